package specializer

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

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
		e.Source = SourceInitial
		a.Put(e)
	}
	return a
}

// sweep resolves budgets in ascending order and checks fit and monotonicity.
func sweep(t *testing.T, r *Resolver, budgets []Budget) []task.Entry {
	t.Helper()
	out := make([]task.Entry, len(budgets))
	for i, b := range budgets {
		e, err := r.Resolve(context.Background(), b)
		if err != nil {
			t.Fatalf("budget %s: %v", b.Key(), err)
		}
		if !b.Fits(e) {
			t.Fatalf("budget %s: answer %d MAdds, %d params does not fit", b.Key(), e.MAdds, e.Params)
		}
		if i > 0 && e.Top1 < out[i-1].Top1 {
			t.Fatalf("accuracy dropped from %.4f to %.4f as the budget grew to %s", out[i-1].Top1, e.Top1, b.Key())
		}
		out[i] = e
	}
	return out
}

func TestResolverSweep(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 24)
	path := filepath.Join(t.TempDir(), "archive.json")
	ev := newGated(&synthetic{spec: spec})
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
	// Measurements held back: the whole sweep sees the same measured archive.
	first := sweep(t, r, budgets)
	predicted := map[string]task.Entry{}
	for i, e := range first {
		if e.Predicted {
			predicted[e.Hash] = e
			measuredBest, _ := Best(arch.Snapshot(), budgets[i])
			if e.Top1 <= measuredBest.Top1 {
				t.Fatalf("predicted answer %.4f does not beat the measured fit %.4f", e.Top1, measuredBest.Top1)
			}
		}
	}
	t.Logf("first sweep: %d searches, %d distinct predicted answers", r.Searches(), len(predicted))
	if len(predicted) == 0 {
		t.Fatal("no budget got a predicted answer; the sparse archive leaves wide gaps")
	}
	// Below everything: a RangeError.
	var re *RangeError
	if _, err := r.Resolve(context.Background(), Budget{MAdds: lo.MAdds - 1}); !errors.As(err, &re) {
		t.Fatalf("budget below the smallest subnet: %v", err)
	}

	// Let the background worker measure them.
	ev.release()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	saved, err := task.LoadArchive(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	for h := range predicted {
		e, ok := saved.Lookup(h)
		if !ok || e.Predicted || e.Source != SourceResolve {
			t.Fatalf("predicted answer %s not measured into the saved archive: %+v %v", h[:12], e, ok)
		}
	}
	// Served as measured now: the same budgets see the measured entries.
	ev.shut()
	second := sweep(t, r, budgets)
	servedMeasured := 0
	for i, e := range second {
		if p, ok := predicted[first[i].Hash]; ok {
			m, _ := arch.Lookup(p.Hash)
			if e.Top1 < m.Top1 {
				t.Fatalf("budget %s: answer %.4f below the measured %.4f of the earlier prediction", budgets[i].Key(), e.Top1, m.Top1)
			}
			if e.Hash == p.Hash && !e.Predicted {
				servedMeasured++
			}
		}
	}
	t.Logf("second sweep: %d answers are earlier predictions now served as measured", servedMeasured)
	if servedMeasured == 0 {
		t.Fatal("no earlier prediction was served as measured")
	}
	ev.release()
}

func TestResolverNoSearchNearBudget(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 30)
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// A budget exactly at a measured entry's cost: the best fit is within the gap.
	es := arch.Snapshot()
	sort.Slice(es, func(i, j int) bool { return es[i].Top1 > es[j].Top1 })
	e, err := r.Resolve(context.Background(), Budget{MAdds: es[0].MAdds})
	if err != nil || e.Predicted || e.Hash != es[0].Hash || r.Searches() != 0 {
		t.Fatalf("got %+v, %v after %d searches; want the measured best without searching", e.Hash, err, r.Searches())
	}
	if _, err := (&Resolver{cfg: ResolverConfig{Spec: spec, Archive: &task.Archive{}}}).Resolve(context.Background(), Budget{MAdds: 1}); !errors.Is(err, ErrEmptyArchive) {
		t.Fatalf("empty archive: %v", err)
	}
}

func BenchmarkResolveCold(b *testing.B) {
	spec := supernet.OFAMobileNetV3(1.0, 1000)
	arch := sparseArchive(b, spec, 60)
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	lo, hi := Range(arch.Snapshot())
	rng := rand.New(rand.NewPCG(1, 1))
	var times, searched []float64
	b.ResetTimer()
	for b.Loop() {
		// A fresh budget between archive points each time, so nothing is memoised.
		bud := Budget{MAdds: lo.MAdds + (hi.MAdds-lo.MAdds)/4 + rng.Int64N((hi.MAdds-lo.MAdds)/2)}
		n := r.Searches()
		t0 := time.Now()
		if _, err := r.Resolve(context.Background(), bud); err != nil {
			b.Fatal(err)
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		times = append(times, ms)
		if r.Searches() > n {
			searched = append(searched, ms)
		}
	}
	sort.Float64s(times)
	b.ReportMetric(times[len(times)/2], "p50-ms")
	if len(searched) > 0 {
		sort.Float64s(searched)
		b.ReportMetric(searched[len(searched)/2], "p50-searched-ms")
	}
	b.ReportMetric(float64(r.Searches())/float64(len(times)), "searches/op")
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
// a predicted answer claims at most the best accuracy measured.
func TestResolverCapsPredictions(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	arch := sparseArchive(t, spec, 20)
	ceiling := 0.0
	for _, e := range arch.Snapshot() {
		ceiling = max(ceiling, e.Top1)
	}
	r, err := NewResolver(ResolverConfig{Spec: spec, Archive: arch, Seed: 1, SearchTime: 100 * time.Millisecond,
		Surrogate: func() surrogate.Model { return wild{} }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	lo, hi := Range(arch.Snapshot())
	for _, m := range []int64{lo.MAdds + (hi.MAdds-lo.MAdds)/3, hi.MAdds} {
		e, err := r.Resolve(context.Background(), Budget{MAdds: m})
		if err != nil {
			t.Fatal(err)
		}
		if e.Top1 > ceiling || e.Top1 < 0 {
			t.Fatalf("budget %d: answer claims %.3f, best measured %.3f", m, e.Top1, ceiling)
		}
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
		r, err := NewResolver(ResolverConfig{Spec: spec, Archive: a, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		e, err := r.Resolve(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		return e, r.Searches()
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
		e.Source = SourceResolve
		arch.Put(e)
		break
	}
	e, n := resolve(arch)
	if n != 0 || e.Predicted || e.Hash != best.Hash {
		t.Fatalf("got %s (predicted %v) after %d searches; want the measured best %s without searching", e.Hash[:12], e.Predicted, n, best.Hash[:12])
	}
}
