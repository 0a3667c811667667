package nat

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stages of an adaptation, as events name them.
const (
	StageSearch   = "search"    // measuring subnets of a round's weights
	StageFineTune = "fine-tune" // training on subnets drawn from the round's elite
	StageAverage  = "average"   // averaging the last rounds' weights
	StageWrite    = "write"     // writing the task folder and its stored statistics
)

// Event is one step of a long run, for progress displays: a terminal bar, or one JSON
// line per event.
type Event struct {
	Stage string `json:"stage"`
	// Round is the adaptation round (0-based; the final search's is Rounds-1); Rounds the
	// number of rounds. Both are 0 outside an adaptation.
	Round  int `json:"round"`
	Rounds int `json:"rounds,omitempty"`
	// Done of Total units of the stage (measurements, training steps); Total 0 when the
	// event counts nothing.
	Done  int `json:"done,omitempty"`
	Total int `json:"total,omitempty"`
	// Message is one line for people.
	Message string `json:"message"`
	// Elapsed since the run started; ETA the estimated time left of the whole run (0:
	// not known yet); Fraction the share of the run's estimated work done.
	Elapsed  time.Duration `json:"elapsed_ns"`
	ETA      time.Duration `json:"eta_ns,omitempty"`
	Fraction float64       `json:"fraction"`
}

// Progress receives a run's events, in order, on the run's goroutine.
type Progress func(Event)

// reporter turns an adaptation's steps into events with a fraction done and an ETA. The
// work left is counted in measurements and training steps, each priced at the time one
// took so far in this run.
type reporter struct {
	fn     Progress
	begun  time.Time
	rounds int

	mu sync.Mutex
	// plan: per round, measurements and steps still to do (the planned totals until a stage
	// starts, then what is left of it).
	measures, steps []int
	// rates: seconds per unit, from this run's finished units.
	measureSecs, stepSecs float64
	measured, stepped     int
	last                  time.Time
	lastStage             string
	totalUnits            float64
}

func newReporter(fn Progress, iterations int) *reporter {
	r := &reporter{fn: fn, begun: time.Now(), rounds: iterations + 1, last: time.Now()}
	r.measures = make([]int, r.rounds)
	r.steps = make([]int, r.rounds)
	return r
}

// plan sets a round's expected measurements and training steps (before it starts).
func (r *reporter) plan(round, measures, steps int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if round >= 0 && round < r.rounds {
		r.measures[round], r.steps[round] = measures, steps
	}
}

// start begins a counted stage: done of total units already done (a resumed run).
func (r *reporter) start(stage string, round, done, total int, msg string) {
	r.mu.Lock()
	r.setLeft(stage, round, total-done)
	r.last, r.lastStage = time.Now(), stage
	r.mu.Unlock()
	r.emit(Event{Stage: stage, Round: round, Done: done, Total: total, Message: msg})
}

// step reports done of total units of a stage; the time since the last step prices one.
func (r *reporter) step(stage string, round, done, total int, msg string) {
	r.mu.Lock()
	now := time.Now()
	if r.lastStage == stage {
		d := now.Sub(r.last).Seconds()
		switch stage {
		case StageFineTune:
			r.stepSecs, r.stepped = r.stepSecs+d, r.stepped+1
		default:
			r.measureSecs, r.measured = r.measureSecs+d, r.measured+1
		}
	}
	r.last, r.lastStage = now, stage
	r.setLeft(stage, round, total-done)
	r.mu.Unlock()
	r.emit(Event{Stage: stage, Round: round, Done: done, Total: total, Message: msg})
}

// done ends a stage: nothing of it is left.
func (r *reporter) done(stage string, round int, msg string) {
	r.mu.Lock()
	r.setLeft(stage, round, 0)
	r.lastStage = ""
	r.mu.Unlock()
	r.emit(Event{Stage: stage, Round: round, Message: msg})
}

// note reports something that counts no unit.
func (r *reporter) note(stage string, round int, msg string) {
	r.emit(Event{Stage: stage, Round: round, Message: msg})
}

// setLeft records the units left of a stage. Callers hold r.mu.
func (r *reporter) setLeft(stage string, round, left int) {
	if round < 0 || round >= r.rounds {
		return
	}
	switch stage {
	case StageFineTune:
		r.steps[round] = max(0, left)
	case StageSearch:
		r.measures[round] = max(0, left)
	}
}

func (r *reporter) emit(e Event) {
	if r.fn == nil {
		return
	}
	r.mu.Lock()
	e.Rounds = r.rounds
	e.Elapsed = time.Since(r.begun)
	e.ETA, e.Fraction = r.estimate(e.Elapsed)
	r.mu.Unlock()
	r.fn(e)
}

// estimate prices the units left at this run's rates. Callers hold r.mu.
func (r *reporter) estimate(elapsed time.Duration) (time.Duration, float64) {
	leftM, leftS := 0, 0
	for i := range r.rounds {
		leftM += r.measures[i]
		leftS += r.steps[i]
	}
	if r.measured == 0 || (leftS > 0 && r.stepped == 0) {
		return 0, 0
	}
	left := float64(leftM) * r.measureSecs / float64(r.measured)
	if leftS > 0 {
		left += float64(leftS) * r.stepSecs / float64(r.stepped)
	}
	eta := time.Duration(left * float64(time.Second))
	frac := elapsed.Seconds() / (elapsed.Seconds() + left)
	return eta, frac
}

// lineWriter is an io.Writer that hands each whole line to fn (for loggers that write
// text).
type lineWriter func(line string)

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		if len(line) > 0 {
			w(string(line))
		}
	}
	return len(p), nil
}

// SizeList writes input sizes compactly: "96,128×2,160" for 96,128,128,160.
func SizeList(sizes []int) string {
	count := map[int]int{}
	var order []int
	for _, v := range sizes {
		if count[v] == 0 {
			order = append(order, v)
		}
		count[v]++
	}
	var b strings.Builder
	for i, v := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(v))
		if count[v] > 1 {
			fmt.Fprintf(&b, "×%d", count[v])
		}
	}
	return b.String()
}
