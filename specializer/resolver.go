package specializer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/natgw/natgw/internal/affinity"
	"github.com/natgw/natgw/specializer/nsga2"
	"github.com/natgw/natgw/specializer/surrogate"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// ResolverConfig configures NewResolver. Zero values take the defaults given.
type ResolverConfig struct {
	Spec    *supernet.Spec // required
	Archive *task.Archive  // required: the measured subnets answers come from
	// ArchivePath, if set, is where the archive is saved after each background measurement.
	ArchivePath string
	// Evaluator measures candidates in the background; nil: no candidate is ever searched
	// for, since only measured subnets are answers.
	Evaluator Evaluator
	// MeasureLatency, if set, fills LatencyMS of background measurements.
	MeasureLatency func(ctx context.Context, arch supernet.Arch) (float64, error)
	// Latency predicts latency for searches under a latency bound; nil: budgets with a
	// latency bound are answered from measured entries only.
	Latency LatencyPredictor

	Surrogate  surrogate.Factory   // accuracy model fitted on the archive; nil: adaptive switching over Surrogates
	Surrogates []surrogate.Factory // candidates of adaptive switching (Kendall tau); default DefaultSurrogates(Seed)
	SearchTime time.Duration       // time limit of one surrogate search; default 200 ms
	Gap        float64             // search when every bound exceeds the answer's cost by more than this share; default 0.10
	PopSize    int                 // NSGA-II population; default 40
	Seed       uint64
	Queue      int          // background searches and measurements waiting at most; default 16 (more are dropped)
	Logger     *slog.Logger // nil: slog.Default()
	// Idle, if set, runs on the background worker each time its queue empties after
	// measuring (a server returns the measurements' memory then, not between two of them).
	Idle func()
	// Background runs the worker on an OS thread of its own at the lowest scheduling
	// priority, so that a server's requests always come first. Measurements must then run
	// on that thread too: one core (an Evaluator with Workers 1).
	Background bool
}

// Answer is a budget's answer.
type Answer struct {
	// Entry is the most accurate measured subnet that fits the budget: what is served.
	Entry task.Entry
	// Pending, when set, is work under way in the background that may give the budget a
	// better answer.
	Pending *Pending
}

// Pending states.
const (
	// PendingSearching: a surrogate search looks for a subnet predicted to beat the answer.
	PendingSearching = "searching"
	// PendingMeasuring: such a subnet was found and is being measured; it replaces the
	// answer if, and only if, it is measured better.
	PendingMeasuring = "measuring"
)

// Pending is background work for a budget.
type Pending struct {
	State string `json:"state"` // PendingSearching or PendingMeasuring
	// Candidate is the subnet being measured, its Top1 predicted (Predicted set); nil
	// while searching.
	Candidate *task.Entry `json:"candidate,omitempty"`
}

// Resolver answers budgets for one task, at once, with the most accurate measured subnet
// that fits (Best). When every measured fit lies far below a budget, it starts a short
// constrained NSGA-II search on an accuracy surrogate in the background; a winner
// predicted to beat the answer is measured there too (one worker, de-duplicated by arch),
// joins the archive, and from then on answers every budget it fits and beats — never
// before it is measured, and never if measured worse. Answers report such pending work.
//
// Monotonicity: an answer is the maximum accuracy over the measured entries that fit the
// budget, and a larger budget admits a superset, so at any moment accuracy never drops as
// a budget grows.
type Resolver struct {
	cfg  ResolverConfig
	log  *slog.Logger
	jobs chan resolverJob
	stop context.CancelFunc
	done chan struct{}

	mu         sync.Mutex
	budgets    map[string]*budgetWork    // by Budget.Key
	candidates map[string]*candidateWork // by arch hash: queued or being measured
	model      surrogate.Model
	modelRows  int // archive rows the model was fitted on
	searches   int
	measures   int
	idle       *sync.Cond
	busy       int // queued + running jobs
}

// budgetWork is a budget's background state.
type budgetWork struct {
	b          Budget
	searchedAt int // archive length at its last search; -1: never searched
	state      string
	candidate  string        // hash, while measuring
	settled    chan struct{} // closed when the state goes back to idle
}

// candidateWork is a predicted subnet queued for measurement and the budgets awaiting it.
type candidateWork struct {
	entry   task.Entry
	budgets []*budgetWork
}

// resolverJob is one unit of background work: a search for a budget or a measurement.
type resolverJob struct {
	search  *budgetWork
	measure *candidateWork
}

// NewResolver fits the surrogate on the archive and starts the background worker; Close
// stops it.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.Spec == nil || cfg.Archive == nil {
		return nil, errors.New("resolver: spec and archive are required")
	}
	if cfg.Surrogate == nil && len(cfg.Surrogates) == 0 {
		cfg.Surrogates = DefaultSurrogates(cfg.Seed)
	}
	if cfg.SearchTime == 0 {
		cfg.SearchTime = 200 * time.Millisecond
	}
	if cfg.Gap == 0 {
		cfg.Gap = 0.10
	}
	if cfg.PopSize == 0 {
		cfg.PopSize = 40
	}
	if cfg.Queue == 0 {
		cfg.Queue = 16
	}
	if cfg.SearchTime < 0 || cfg.Gap < 0 || cfg.PopSize < 2 || cfg.Queue < 1 {
		return nil, fmt.Errorf("resolver: search time %v, gap %v, population %d, queue %d out of range", cfg.SearchTime, cfg.Gap, cfg.PopSize, cfg.Queue)
	}
	r := &Resolver{cfg: cfg, log: cfg.Logger, jobs: make(chan resolverJob, cfg.Queue), done: make(chan struct{}),
		budgets: map[string]*budgetWork{}, candidates: map[string]*candidateWork{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.idle = sync.NewCond(&r.mu)
	if cfg.Evaluator != nil {
		if err := r.refit(); err != nil {
			r.log.Warn("resolver: no surrogate yet; answering from measured entries only", "err", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.worker(ctx)
	return r, nil
}

// Close stops the background worker, abandoning queued work.
func (r *Resolver) Close() {
	r.stop()
	<-r.done
}

// WaitIdle blocks until no background work is queued or running, or ctx ends.
func (r *Resolver) WaitIdle(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.idle.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.busy > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.idle.Wait()
	}
	return nil
}

// Settled returns a channel closed once b has no background work pending (closed at once
// when it has none).
func (r *Resolver) Settled(b Budget) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.budgets[b.Key()]; w != nil && w.state != "" {
		return w.settled
	}
	done := make(chan struct{})
	close(done)
	return done
}

// Searches counts the surrogate searches run so far; Measured the background
// measurements.
func (r *Resolver) Searches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.searches
}

// Measured counts the candidates measured in the background so far.
func (r *Resolver) Measured() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.measures
}

// refit fits the surrogate on the measured archive entries when they changed.
func (r *Resolver) refit() error {
	var X [][]float64
	var y []float64
	for _, e := range r.cfg.Archive.Snapshot() {
		if e.Predicted {
			continue
		}
		f, err := Features(r.cfg.Spec, e.Arch)
		if err != nil {
			return err
		}
		X, y = append(X, f), append(y, e.Top1)
	}
	r.mu.Lock()
	same := len(X) == r.modelRows && r.model != nil
	r.mu.Unlock()
	if same {
		return nil
	}
	if len(X) < 4 {
		return fmt.Errorf("%d measured entries, need at least 4", len(X))
	}
	var m surrogate.Model
	if r.cfg.Surrogate != nil {
		m = r.cfg.Surrogate()
		if err := m.Fit(X, y); err != nil {
			return fmt.Errorf("resolver: fit %s: %w", m.Name(), err)
		}
	} else {
		// Adaptive switching as the search does: a model that ranks held-out subnets well
		// also extrapolates less wildly than a fixed choice.
		var err error
		if m, _, err = surrogate.Select(context.Background(), r.cfg.Surrogates, X, y, max(2, min(5, len(X)/2)), r.cfg.Seed); err != nil {
			return fmt.Errorf("resolver: surrogate: %w", err)
		}
	}
	r.mu.Lock()
	r.model, r.modelRows = m, len(X)
	r.mu.Unlock()
	return nil
}

// Resolve answers a budget at once (see Resolver), starting a background search when the
// budget deserves one. Errors are ErrEmptyArchive or *RangeError from Best.
func (r *Resolver) Resolve(ctx context.Context, b Budget) (Answer, error) {
	entries := r.cfg.Archive.Snapshot()
	best, err := Best(entries, b)
	if err != nil {
		return Answer{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := b.Key()
	w := r.budgets[key]
	if w == nil {
		w = &budgetWork{b: b, searchedAt: -1}
	}
	if w.state == "" && r.worthSearching(b, best, entries, w) {
		select {
		case r.jobs <- resolverJob{search: w}:
			r.track(key, w)
			w.state, w.settled = PendingSearching, make(chan struct{})
			r.busy++
		default: // queue full: a later request asks again
		}
	}
	ans := Answer{Entry: best}
	switch w.state {
	case PendingSearching:
		ans.Pending = &Pending{State: PendingSearching}
	case PendingMeasuring:
		if c := r.candidates[w.candidate]; c != nil {
			e := c.entry
			ans.Pending = &Pending{State: PendingMeasuring, Candidate: &e}
		}
	}
	return ans, nil
}

// maxTrackedBudgets bounds the budgets whose last search the resolver remembers; beyond
// it the settled ones are forgotten (and may be searched again), so that a flood of
// distinct budgets cannot grow memory.
const maxTrackedBudgets = 4096

// track remembers budget work under key. Callers hold r.mu.
func (r *Resolver) track(key string, w *budgetWork) {
	if _, ok := r.budgets[key]; !ok && len(r.budgets) >= maxTrackedBudgets {
		for k, old := range r.budgets {
			if old.state == "" {
				delete(r.budgets, k)
			}
		}
	}
	r.budgets[key] = w
}

// worthSearching reports whether a search may find b something better than best: a
// surrogate and a way to measure exist, best is not already the most accurate subnet
// measured (no prediction may claim more, see search), every measured fit lies far below
// b, nothing measured lies near it, and the archive changed since b's last search.
// Callers hold r.mu.
func (r *Resolver) worthSearching(b Budget, best task.Entry, entries []task.Entry, w *budgetWork) bool {
	switch {
	case r.cfg.Evaluator == nil || r.model == nil:
		return false
	case b.LatencyMS > 0 && r.cfg.Latency == nil:
		return false
	case w.searchedAt == len(entries):
		return false
	case best.Top1 >= measuredCeiling(entries):
		return false
	}
	return r.farBelow(b, best) && !r.measuredNear(b, entries)
}

// measuredCeiling is the best accuracy measured.
func measuredCeiling(entries []task.Entry) float64 {
	ceiling := 0.0
	for _, e := range entries {
		if !e.Predicted {
			ceiling = max(ceiling, e.Top1)
		}
	}
	return ceiling
}

func (r *Resolver) worker(ctx context.Context) {
	defer close(r.done)
	if r.cfg.Background {
		// Locked for good: the thread leaves with the goroutine, never carrying its low
		// priority back to Go's pool.
		runtime.LockOSThread()
		if err := affinity.LowerThread(affinity.Background); err != nil {
			r.log.Warn("resolver: background work at normal priority", "err", err)
		}
	}
	measured := false
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.jobs:
			if j.search != nil {
				r.runSearch(ctx, j.search)
			} else {
				r.runMeasure(ctx, j.measure)
				measured = true
			}
			r.mu.Lock()
			r.busy--
			empty := r.busy == 0
			r.idle.Broadcast()
			r.mu.Unlock()
			if empty && measured && r.cfg.Idle != nil {
				r.cfg.Idle()
				measured = false
			}
		}
	}
}

// runSearch searches for budget w and queues its winner's measurement when the winner is
// predicted to beat the measured answer.
func (r *Resolver) runSearch(ctx context.Context, w *budgetWork) {
	entries := r.cfg.Archive.Snapshot()
	r.mu.Lock()
	model := r.model
	r.mu.Unlock()
	best, err := Best(entries, w.b)
	var win task.Entry
	found := false
	if err == nil {
		win, found, err = r.search(ctx, w.b, model, entries)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	w.searchedAt = len(entries)
	r.searches++
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("resolver: surrogate search failed", "budget", w.b.Key(), "err", err)
		}
		r.settleLocked(w)
		return
	}
	if !found || win.Top1 <= best.Top1 {
		r.settleLocked(w)
		return
	}
	c := r.candidates[win.Hash]
	if c == nil {
		c = &candidateWork{entry: win}
		select {
		case r.jobs <- resolverJob{measure: c}:
			r.candidates[win.Hash] = c
			r.busy++
		default: // queue full: a later request searches again
			w.searchedAt = -1
			r.settleLocked(w)
			return
		}
	}
	c.budgets = append(c.budgets, w)
	w.state, w.candidate = PendingMeasuring, win.Hash
}

// runMeasure measures a candidate into the archive and settles the budgets awaiting it.
func (r *Resolver) runMeasure(ctx context.Context, c *candidateWork) {
	err := r.measure(ctx, c.entry)
	if err != nil && ctx.Err() == nil {
		r.log.Warn("resolver: background measurement failed", "hash", c.entry.Hash, "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.measures++
	}
	delete(r.candidates, c.entry.Hash)
	for _, w := range c.budgets {
		r.settleLocked(w)
	}
}

// settleLocked returns a budget to idle and wakes its waiters. Callers hold r.mu.
func (r *Resolver) settleLocked(w *budgetWork) {
	if w.state == "" {
		return
	}
	w.state, w.candidate = "", ""
	close(w.settled)
}

// measuredNear reports whether a measured entry fits b without being far below it: the
// archive already covers the budget's neighbourhood (a search there, such as the
// adaptation's pre-resolution, measured its picks), so a surrogate search would only
// re-predict what was measured to be worse.
func (r *Resolver) measuredNear(b Budget, entries []task.Entry) bool {
	for _, e := range entries {
		if !e.Predicted && b.Fits(e) && !r.farBelow(b, e) {
			return true
		}
	}
	return false
}

// farBelow reports whether every bound of b exceeds e's cost by more than the gap.
func (r *Resolver) farBelow(b Budget, e task.Entry) bool {
	g := r.cfg.Gap
	if b.MAdds > 0 && float64(b.MAdds-e.MAdds) <= g*float64(b.MAdds) {
		return false
	}
	if b.Params > 0 && float64(b.Params-e.Params) <= g*float64(b.Params) {
		return false
	}
	if b.LatencyMS > 0 && b.LatencyMS-e.LatencyMS <= g*b.LatencyMS {
		return false
	}
	return !b.IsZero()
}

// search runs NSGA-II on the surrogate under b's bounds for at most SearchTime and
// returns the feasible unmeasured arch of highest predicted accuracy.
func (r *Resolver) search(ctx context.Context, b Budget, model surrogate.Model, entries []task.Entry) (task.Entry, bool, error) {
	spec := r.cfg.Spec
	measured := map[string]bool{}
	var initial [][]float64
	// A surrogate extrapolates freely (an RBF fit can predict 160 % top-1 far from its
	// data); no prediction may claim more than the best accuracy actually measured.
	ceiling := measuredCeiling(entries)
	clamp := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return min(max(v, 0), ceiling)
	}
	for _, e := range entries {
		if e.Predicted {
			continue
		}
		measured[e.Hash] = true
		if b.Fits(e) && len(initial) < r.cfg.PopSize/2 {
			g, err := genome(spec, e.Arch)
			if err == nil {
				initial = append(initial, g)
			}
		}
	}
	prob := nsga2.Problem{
		Vars:   genomeVars(spec),
		NumObj: 2,
		Repair: func(g []float64) { repairGenome(spec, g) },
		Evaluate: func(ctx context.Context, genomes [][]float64) ([][]float64, []float64, error) {
			objs, _, err := surrogateObjectives(spec, []Objective{ObjMAdds}, nil, model, genomes)
			if err != nil {
				return nil, nil, err
			}
			for _, o := range objs {
				o[0] = -clamp(-o[0])
			}
			cv := make([]float64, len(genomes))
			for i, g := range genomes {
				a, err := archOf(spec, g)
				if err != nil {
					return nil, nil, err
				}
				cv[i] = r.violation(b, a, objs[i][1])
			}
			return objs, cv, nil
		},
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.SearchTime)
	defer cancel()
	seed := splitmix64(r.cfg.Seed ^ uint64(len(entries)) ^ uint64(b.MAdds) ^ uint64(b.Params) ^ math.Float64bits(b.LatencyMS))
	res, err := nsga2.Run(sctx, prob, nsga2.Config{PopSize: r.cfg.PopSize, Generations: 1 << 20, Seed: seed, Initial: initial})
	if err != nil && (ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) || len(res.Population) == 0) {
		return task.Entry{}, false, err
	}
	var win task.Entry
	found := false
	for _, ind := range res.Population {
		if !ind.Feasible() {
			continue
		}
		a, err := archOf(spec, ind.Genome)
		if err != nil || measured[a.Hash()] {
			continue
		}
		cnt, err := CountArch(spec, a)
		if err != nil {
			continue
		}
		e := task.Entry{Arch: a, Hash: a.Hash(), MAdds: cnt.MAdds, Params: cnt.Params, Top1: clamp(-ind.Objs[0]),
			Split: task.SplitVal, Predicted: true, Source: task.SourceResolve}
		if b.LatencyMS > 0 {
			e.LatencyMS = r.cfg.Latency.PredictMS(a)
		}
		if b.Fits(e) && (!found || better(e, win)) {
			win, found = e, true
		}
	}
	return win, found, nil
}

// violation is the summed relative excess of a over b's bounds (0 = fits).
func (r *Resolver) violation(b Budget, a supernet.Arch, madds float64) float64 {
	v := 0.0
	if b.MAdds > 0 {
		v += math.Max(0, madds/float64(b.MAdds)-1)
	}
	if b.Params > 0 || b.LatencyMS > 0 {
		cnt, err := CountArch(r.cfg.Spec, a)
		if err != nil {
			return math.Inf(1)
		}
		if b.Params > 0 {
			v += math.Max(0, float64(cnt.Params)/float64(b.Params)-1)
		}
		if b.LatencyMS > 0 {
			l := r.cfg.Latency.PredictMS(a)
			if math.IsNaN(l) {
				return math.Inf(1)
			}
			v += math.Max(0, l/b.LatencyMS-1)
		}
	}
	return v
}

func (r *Resolver) measure(ctx context.Context, p task.Entry) error {
	e, err := r.cfg.Evaluator.Evaluate(ctx, p.Arch)
	if err != nil {
		return err
	}
	if r.cfg.MeasureLatency != nil {
		if e.LatencyMS, err = r.cfg.MeasureLatency(ctx, e.Arch); err != nil {
			return err
		}
	}
	e.Source, e.Predicted = task.SourceResolve, false
	r.cfg.Archive.Put(e)
	if r.cfg.ArchivePath != "" {
		if err := r.cfg.Archive.Save(r.cfg.ArchivePath); err != nil {
			return fmt.Errorf("save archive: %w", err)
		}
	}
	return r.refit()
}
