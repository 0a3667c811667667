package specializer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/natgw/natgw/internal/affinity"
	"github.com/natgw/natgw/specializer/surrogate"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// gated wraps an evaluator so a test decides when background measurements may run.
type gated struct {
	Evaluator
	mu   sync.Mutex
	open chan struct{}
}

func newGated(ev Evaluator) *gated { return &gated{Evaluator: ev, open: make(chan struct{})} }

func (g *gated) Evaluate(ctx context.Context, a supernet.Arch) (task.Entry, error) {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return task.Entry{}, ctx.Err()
	}
	return g.Evaluator.Evaluate(ctx, a)
}

func (g *gated) release() { close(g.open) }

func (g *gated) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

// sparseArchive measures n random archs plus the extremes with the synthetic evaluator.
func sparseArchive(t testing.TB, spec *supernet.Spec, n int) *task.Archive {
	ev := &synthetic{spec: spec}
	a := &task.Archive{}
	for _, arch := range InitialSample(spec, n, 3) {
		e, err := ev.Evaluate(context.Background(), arch)
		if err != nil {
			t.Fatal(err)
		}
		e.Source = task.SourceInitial
		a.Put(e)
	}
	return a
}

// sweep resolves budgets in ascending order and checks that every answer is measured,
// fits, and never less accurate than a smaller budget's.
func sweep(t *testing.T, r *Resolver, budgets []Budget) []Answer {
	t.Helper()
	out := make([]Answer, len(budgets))
	for i, b := range budgets {
		a, err := r.Resolve(context.Background(), b)
		if err != nil {
			t.Fatalf("budget %s: %v", b.Key(), err)
		}
		e := a.Entry
		if e.Predicted || !b.Fits(e) {
			t.Fatalf("budget %s: answer %d MAdds, %d params, predicted %v: not a measured fit", b.Key(), e.MAdds, e.Params, e.Predicted)
		}
		if i > 0 && e.Top1 < out[i-1].Entry.Top1 {
			t.Fatalf("accuracy dropped from %.4f to %.4f as the budget grew to %s", out[i-1].Entry.Top1, e.Top1, b.Key())
		}
		out[i] = a
	}
	return out
}

// settle waits until no budget of budgets is still being searched for.
func settle(t *testing.T, r *Resolver, budgets []Budget) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, b := range budgets {
		for {
			a, err := r.Resolve(context.Background(), b)
			if err != nil || a.Pending == nil || a.Pending.State != PendingSearching {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("budget %s still searching after a minute", b.Key())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// scripted measures each candidate at its prediction plus a fixed shift, better or worse
// by the hash's first digit, so that a test knows which candidates must win.
type scripted struct {
	*gated
	mu        sync.Mutex
	predicted map[string]float64
}

func (s *scripted) shift(hash string) float64 {
	if hash[0] < '8' {
		return +0.01 // measured better than predicted
	}
	return -0.5 // measured far worse than anything
}

func (s *scripted) Evaluate(ctx context.Context, a supernet.Arch) (task.Entry, error) {
	e, err := s.gated.Evaluate(ctx, a)
	if err != nil {
		return e, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.predicted[e.Hash]
	if !ok {
		return e, fmt.Errorf("measured %s, which no answer announced as a candidate", e.Hash[:12])
	}
	e.Top1 = max(0, p+s.shift(e.Hash))
	return e, nil
}

// TestResolverSweep: answers are immediate and measured; a budget far above its best fit
// announces a search, then a candidate; once measured, a candidate measured better becomes
// the answer of the budgets it fits and beats, one measured worse never does.
func TestResolverSweep(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 24)
	path := filepath.Join(t.TempDir(), "archive.json")
	ev := &scripted{gated: newGated(&synthetic{spec: spec}), predicted: map[string]float64{}}
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, ArchivePath: path, Evaluator: ev, Seed: 1,
		SearchTime: 100 * time.Millisecond, Queue: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lo, hi := Range(arch.Snapshot())
	var budgets []Budget
	for i := range 20 {
		m := lo.MAdds + (hi.MAdds-lo.MAdds)*int64(i+1)/20
		b := Budget{MAdds: m}
		if i%3 == 2 { // mixed bounds: params loose but present
			b.Params = hi.Params * 2
		}
		budgets = append(budgets, b)
	}
	before := arch.Len()
	first := sweep(t, r, budgets)
	searching := 0
	for _, a := range first {
		if a.Pending != nil && a.Pending.State == PendingSearching {
			searching++
		}
	}
	if searching == 0 {
		t.Fatal("no budget started a search; the sparse archive leaves wide gaps")
	}
	// Measurements held back: the searches finish and announce their candidates.
	settle(t, r, budgets)
	announced := sweep(t, r, budgets)
	candidates := map[string]task.Entry{}
	for i, a := range announced {
		if a.Entry.Hash != first[i].Entry.Hash {
			t.Fatalf("budget %s: the answer changed before anything was measured", budgets[i].Key())
		}
		if a.Pending == nil {
			continue
		}
		c := a.Pending.Candidate
		if a.Pending.State != PendingMeasuring || c == nil || !c.Predicted || !budgets[i].Fits(*c) || c.Top1 <= a.Entry.Top1 {
			t.Fatalf("budget %s: pending %+v does not announce a fitting candidate predicted to beat %.4f", budgets[i].Key(), a.Pending, a.Entry.Top1)
		}
		candidates[c.Hash] = *c
	}
	if len(candidates) == 0 {
		t.Fatal("no search found a candidate")
	}
	ev.mu.Lock()
	wins, losses := 0, 0
	for h, c := range candidates {
		ev.predicted[h] = c.Top1
		if ev.shift(h) > 0 {
			wins++
		} else {
			losses++
		}
	}
	ev.mu.Unlock()
	t.Logf("%d budgets searched, %d candidates (%d to be measured better, %d worse)", r.Searches(), len(candidates), wins, losses)
	if arch.Len() != before {
		t.Fatal("the archive grew before any measurement was allowed")
	}

	ev.release()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, b := range budgets {
		select {
		case <-r.Settled(b):
		case <-ctx.Done():
			t.Fatalf("budget %s never settled", b.Key())
		}
	}
	if err := r.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	saved, err := task.LoadArchive(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	ev.shut() // any search the next sweep starts stays pending
	second := sweep(t, r, budgets)
	replaced, kept := 0, 0
	for i, a := range announced {
		if a.Pending == nil {
			continue
		}
		c := a.Pending.Candidate
		m, ok := saved.Lookup(c.Hash)
		if !ok || m.Predicted || m.Source != task.SourceResolve {
			t.Fatalf("candidate %s not measured into the saved archive: %+v %v", c.Hash[:12], m, ok)
		}
		got := second[i].Entry
		if m.Top1 > a.Entry.Top1 {
			if got.Top1 < m.Top1 {
				t.Fatalf("budget %s: answer %.4f below its candidate measured at %.4f", budgets[i].Key(), got.Top1, m.Top1)
			}
			replaced++
		} else {
			if got.Hash == c.Hash {
				t.Fatalf("budget %s: candidate measured worse (%.4f < %.4f) became the answer", budgets[i].Key(), m.Top1, a.Entry.Top1)
			}
			kept++
		}
	}
	t.Logf("after measuring: %d answers replaced by better candidates, %d kept over worse ones", replaced, kept)
	if replaced == 0 || kept == 0 {
		t.Fatalf("the scripted measurements exercise one side only (%d replaced, %d kept)", replaced, kept)
	}
	// Below everything: a RangeError.
	var re *RangeError
	if _, err := r.Resolve(context.Background(), Budget{MAdds: lo.MAdds - 1}); !errors.As(err, &re) {
		t.Fatalf("budget below the smallest subnet: %v", err)
	}
	ev.release()
}

// TestResolverWithoutEvaluator: a resolver that cannot measure never searches: answers are
// measured entries with nothing pending.
func TestResolverWithoutEvaluator(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 24)
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, hi := Range(arch.Snapshot())
	a, err := r.Resolve(context.Background(), Budget{MAdds: hi.MAdds * 10})
	if err != nil || a.Pending != nil || r.Searches() != 0 {
		t.Fatalf("answer %+v, %v after %d searches; want a measured answer and no search", a.Pending, err, r.Searches())
	}
}

func TestResolverNoSearchNearBudget(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 30)
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1, Evaluator: &synthetic{spec: spec}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A budget exactly at a measured entry's cost: the best fit is within the gap.
	es := arch.Snapshot()
	sort.Slice(es, func(i, j int) bool { return es[i].Top1 > es[j].Top1 })
	a, err := r.Resolve(context.Background(), Budget{MAdds: es[0].MAdds})
	if err != nil || a.Entry.Hash != es[0].Hash || a.Pending != nil {
		t.Fatalf("got %+v (pending %+v), %v; want the measured best with nothing pending", a.Entry.Hash, a.Pending, err)
	}
	r.WaitIdle(context.Background())
	if r.Searches() != 0 {
		t.Fatalf("%d searches for a budget at a measured entry", r.Searches())
	}
	if _, err := (&Resolver{cfg: ResolverConfig{Spec: spec, Archive: &task.Archive{}}}).Resolve(context.Background(), Budget{MAdds: 1}); !errors.Is(err, ErrEmptyArchive) {
		t.Fatalf("empty archive: %v", err)
	}
}

// TestResolverForgetsSettledBudgets: a flood of distinct budgets keeps the resolver's
// memory of them bounded.
func TestResolverForgetsSettledBudgets(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 24)
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1, Evaluator: &synthetic{spec: spec}, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 2 * maxTrackedBudgets {
		r.mu.Lock()
		r.track(fmt.Sprint(i), &budgetWork{searchedAt: 1})
		n := len(r.budgets)
		r.mu.Unlock()
		if n > maxTrackedBudgets {
			t.Fatalf("%d budgets remembered, at most %d", n, maxTrackedBudgets)
		}
	}
}

// BenchmarkResolve times answers to fresh budgets between archive points: the request's
// share of resolution (searches run in the background).
func BenchmarkResolve(b *testing.B) {
	spec := supernet.OFAMobileNetV3(1.0, 1000)
	arch := sparseArchive(b, spec, 60)
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1, Evaluator: newGated(&synthetic{spec: spec})})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	lo, hi := Range(arch.Snapshot())
	rng := rand.New(rand.NewPCG(1, 1))
	var times []float64
	b.ResetTimer()
	for b.Loop() {
		// A fresh budget between archive points each time, so nothing is memoised.
		bud := Budget{MAdds: lo.MAdds + (hi.MAdds-lo.MAdds)/4 + rng.Int64N((hi.MAdds-lo.MAdds)/2)}
		t0 := time.Now()
		if _, err := r.Resolve(context.Background(), bud); err != nil {
			b.Fatal(err)
		}
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
	}
	sort.Float64s(times)
	b.ReportMetric(times[len(times)/2], "p50-ms")
	b.ReportMetric(times[len(times)*99/100], "p99-ms")
}

// wild is a surrogate that predicts far beyond any measurement.
type wild struct{}

func (wild) Fit([][]float64, []float64) error { return nil }
func (wild) Name() string                     { return "wild" }
func (wild) Predict(X [][]float64) []float64 {
	y := make([]float64, len(X))
	for i, x := range X {
		y[i] = 3 + x[0] // grows with the first feature: the search still has a gradient
	}
	return y
}

// TestResolverCapsPredictions: a surrogate predicting 300 % top-1 must not reach a client;
// a candidate claims at most the best accuracy measured.
func TestResolverCapsPredictions(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 20)
	ceiling := 0.0
	for _, e := range arch.Snapshot() {
		ceiling = max(ceiling, e.Top1)
	}
	ev := newGated(&synthetic{spec: spec})
	defer ev.release()
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1, SearchTime: 100 * time.Millisecond,
		Surrogate: func() surrogate.Model { return wild{} }, Evaluator: ev})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lo, hi := Range(arch.Snapshot())
	var budgets []Budget
	for i := range 10 {
		budgets = append(budgets, Budget{MAdds: lo.MAdds + (hi.MAdds-lo.MAdds)*int64(i+1)/10})
	}
	sweep(t, r, budgets)
	settle(t, r, budgets)
	seen := 0
	for _, b := range budgets {
		a, err := r.Resolve(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		if a.Pending != nil && a.Pending.Candidate != nil {
			seen++
			if c := a.Pending.Candidate.Top1; c > ceiling || c < 0 {
				t.Fatalf("budget %d: candidate claims %.3f, best measured %.3f", b.MAdds, c, ceiling)
			}
		}
	}
	if seen == 0 {
		t.Fatal("the wild surrogate announced no candidate")
	}
}

// TestResolverNoSearchWhereMeasured: a budget far above its best fit is searched, unless a
// measured (if worse) subnet already lies near the budget, as the adaptation's
// pre-resolution leaves: then the measured best is the answer.
func TestResolverNoSearchWhereMeasured(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 30)
	// A budget just under a measured entry whose best fit lies far below it.
	es := arch.Snapshot()
	sort.Slice(es, func(i, j int) bool { return es[i].MAdds < es[j].MAdds })
	var b Budget
	var best task.Entry
	for i := 1; i < len(es) && b.IsZero(); i++ {
		cand := Budget{MAdds: es[i].MAdds - 1}
		fit, err := Best(es[:i], cand)
		if err == nil && float64(fit.MAdds) < 0.7*float64(cand.MAdds) {
			b, best = cand, fit
		}
	}
	if b.IsZero() {
		t.Fatal("the sample has no budget far above its best fit")
	}
	resolve := func(a *task.Archive) (task.Entry, int) {
		ev := newGated(&synthetic{spec: spec})
		defer ev.release()
		r, err := NewResolver(ResolverConfig{Spec: spec, Archive: a, Seed: 1, Evaluator: ev})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		ans, err := r.Resolve(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		settle(t, r, []Budget{b})
		return ans.Entry, r.Searches()
	}
	if _, n := resolve(arch); n != 1 {
		t.Fatalf("%d searches for a budget far above its best fit, want 1", n)
	}

	// A measured subnet, less accurate than the best, just under the budget.
	ev := &synthetic{spec: spec}
	rng := rand.New(rand.NewPCG(5, 6))
	for tries := 0; ; tries++ {
		if tries > 200000 {
			t.Fatalf("no random arch near the budget %d", b.MAdds)
		}
		a := RandomArch(spec, rng)
		cnt, err := CountArch(spec, a)
		if err != nil || cnt.MAdds > b.MAdds || cnt.MAdds < b.MAdds*91/100 {
			continue
		}
		e, err := ev.Evaluate(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		if e.Top1 >= best.Top1 {
			continue
		}
		e.Source = task.SourceResolve
		arch.Put(e)
		break
	}
	e, n := resolve(arch)
	if n != 0 || e.Predicted || e.Hash != best.Hash {
		t.Fatalf("got %s (predicted %v) after %d searches; want the measured best %s without searching", e.Hash[:12], e.Predicted, n, best.Hash[:12])
	}
}

// TestResolverNoSearchAboveTheBest: a budget whose best fit is already the most accurate
// subnet measured starts no search: no prediction may claim more.
func TestResolverNoSearchAboveTheBest(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 24)
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1, Evaluator: &synthetic{spec: spec}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, hi := Range(arch.Snapshot())
	a, err := r.Resolve(context.Background(), Budget{MAdds: hi.MAdds * 10})
	if err != nil || a.Pending != nil || a.Entry.Top1 != measuredCeiling(arch.Snapshot()) {
		t.Fatalf("answer %.4f, pending %+v, %v; want the best measured with nothing pending", a.Entry.Top1, a.Pending, err)
	}
	r.WaitIdle(context.Background())
	if r.Searches() != 0 {
		t.Fatalf("%d searches above the best subnet", r.Searches())
	}
}

// niceRecorder records the scheduling niceness of the thread each measurement runs on.
type niceRecorder struct {
	Evaluator
	mu   sync.Mutex
	seen []int
}

func (n *niceRecorder) Evaluate(ctx context.Context, a supernet.Arch) (task.Entry, error) {
	v, err := affinity.ThreadNice()
	if err != nil {
		return task.Entry{}, err
	}
	n.mu.Lock()
	n.seen = append(n.seen, v)
	n.mu.Unlock()
	return n.Evaluator.Evaluate(ctx, a)
}

// TestResolverBackgroundPriority: with Background set, searches and measurements run on a
// thread at the lowest priority, and the caller's thread keeps its own.
func TestResolverBackgroundPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread priorities are set on Linux only")
	}
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 24)
	ev := &niceRecorder{Evaluator: &synthetic{spec: spec}}
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1, Evaluator: ev, Background: true, SearchTime: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lo, hi := Range(arch.Snapshot())
	for i := range 20 {
		r.Resolve(context.Background(), Budget{MAdds: lo.MAdds + (hi.MAdds-lo.MAdds)*int64(i+1)/20})
	}
	if err := r.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.seen) == 0 {
		t.Fatal("nothing was measured in the background")
	}
	for _, v := range ev.seen {
		if v != affinity.Background {
			t.Fatalf("a background measurement ran at niceness %d, want %d", v, affinity.Background)
		}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if v, _ := affinity.ThreadNice(); v == affinity.Background {
		t.Fatal("the caller's thread was lowered too")
	}
}
