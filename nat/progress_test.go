package nat

import (
	"testing"
	"time"
)

func TestSizeList(t *testing.T) {
	if got := SizeList([]int{128, 96, 128, 160, 128}); got != "128×3,96,160" {
		t.Errorf("SizeList: %q", got)
	}
}

// The reporter prices what is left at the run's own rates, knows nothing before it has
// seen both kinds of work, and reaches a fraction of 1 with nothing left.
func TestReporterEstimates(t *testing.T) {
	var events []Event
	r := newReporter(func(e Event) { events = append(events, e) }, 1)
	r.plan(0, 4, 10)
	r.plan(1, 4, 0)
	r.start(StageSearch, 0, 0, 4, "search")
	if events[0].ETA != 0 || events[0].Fraction != 0 {
		t.Fatalf("an estimate before anything ran: %+v", events[0])
	}
	for i := 1; i <= 4; i++ {
		time.Sleep(2 * time.Millisecond)
		r.step(StageSearch, 0, i, 4, "m")
	}
	r.done(StageSearch, 0, "search done")
	if e := events[len(events)-1]; e.ETA != 0 {
		t.Fatalf("an estimate with no training step priced yet: %+v", e)
	}
	r.start(StageFineTune, 0, 0, 10, "train")
	for i := 1; i <= 10; i++ {
		time.Sleep(time.Millisecond)
		r.step(StageFineTune, 0, i, 10, "s")
	}
	r.done(StageFineTune, 0, "trained")
	e := events[len(events)-1]
	if e.ETA <= 0 || e.Fraction <= 0 || e.Fraction >= 1 || e.Rounds != 2 {
		t.Fatalf("after a round, with the final search left: %+v", e)
	}
	r.start(StageSearch, 1, 0, 4, "final")
	for i := 1; i <= 4; i++ {
		r.step(StageSearch, 1, i, 4, "m")
	}
	r.done(StageSearch, 1, "done")
	if e := events[len(events)-1]; e.ETA != 0 || e.Fraction != 1 {
		t.Fatalf("at the end: %+v", e)
	}
}
