package specializer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/natgw/natgw/specializer/surrogate"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// fastSurrogates keeps the loop tests quick on a shared machine.
func fastSurrogates(seed uint64) []surrogate.Factory {
	return []surrogate.Factory{
		func() surrogate.Model { return surrogate.NewRBFEnsemble(5, seed) },
		func() surrogate.Model { return surrogate.NewGP(surrogate.Matern52) },
	}
}

func searchConfig(ev Evaluator, arch *task.Archive, path string, evals int) Config {
	return Config{Evaluator: ev, Archive: arch, ArchivePath: path, Evals: evals, InitialSamples: 30,
		PerIteration: 10, Seed: 7, Surrogates: fastSurrogates(7), PopSize: 60, Generations: 30, Folds: 4}
}

func TestSearchBeatsRandomSearch(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	const n = 90
	arch := &task.Archive{}
	var progress bytes.Buffer
	cfg := searchConfig(&synthetic{spec: spec}, arch, "", n)
	cfg.Progress = &progress
	if err := Search(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := arch.Len(); got != n {
		t.Fatalf("archive has %d entries, want %d", got, n)
	}
	lo, _ := CountArch(spec, spec.Smallest())
	hi, _ := CountArch(spec, spec.Largest())
	natHV := Hypervolume(arch.Snapshot(), lo.MAdds, hi.MAdds)

	// Random search with the same budget: the same first two (extremes), the rest uniform.
	ev := &synthetic{spec: spec}
	var random []task.Entry
	for _, a := range InitialSample(spec, n, 7) {
		e, err := ev.Evaluate(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		random = append(random, e)
	}
	randHV := Hypervolume(random, lo.MAdds, hi.MAdds)
	t.Logf("hypervolume at %d evaluations: NAT %.4f, random %.4f", n, natHV, randHV)
	if !(natHV > randHV) {
		t.Errorf("NAT hypervolume %.4f does not beat random search's %.4f", natHV, randHV)
	}
	out := progress.String()
	for _, want := range []string{"measured 1/90 (initial)", "measured 30/90 (initial)", "eta ", "iteration 1", "hv ", "surrogate ", "tau "} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	// Sources and iterations are recorded.
	for _, e := range arch.Snapshot() {
		if (e.Source == task.SourceInitial) != (e.Iteration == 0) || (e.Source != task.SourceInitial && e.Source != task.SourceSearch) {
			t.Fatalf("entry with source %q iteration %d", e.Source, e.Iteration)
		}
	}
}

func TestSearchResumes(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	const n = 60
	dir := t.TempDir()

	full := &task.Archive{}
	if err := Search(context.Background(), searchConfig(&synthetic{spec: spec}, full, filepath.Join(dir, "full.json"), n)); err != nil {
		t.Fatal(err)
	}

	// Kill twice: once in the initial sample, once mid-iteration.
	path := filepath.Join(dir, "resumed.json")
	for _, killAt := range []int{12, 45} {
		arch, err := task.LoadArchive(path, spec)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ev := &synthetic{spec: spec, cancelAfter: killAt - arch.Len(), cancel: cancel}
		err = Search(ctx, searchConfig(ev, arch, path, n))
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("killed search returned %v, want context.Canceled", err)
		}
	}
	arch, err := task.LoadArchive(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	if arch.Len() >= n {
		t.Fatalf("the kills left %d entries, want fewer than %d", arch.Len(), n)
	}
	if err := Search(context.Background(), searchConfig(&synthetic{spec: spec}, arch, path, n)); err != nil {
		t.Fatal(err)
	}
	fullSaved, err := task.LoadArchive(filepath.Join(dir, "full.json"), spec)
	if err != nil {
		t.Fatal(err)
	}
	resumed, err := task.LoadArchive(path, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fullSaved.Snapshot(), resumed.Snapshot()) {
		a, b := fullSaved.Snapshot(), resumed.Snapshot()
		for i := range min(len(a), len(b)) {
			if a[i].Hash != b[i].Hash {
				t.Fatalf("resumed archive differs from the uninterrupted one at entry %d (%s it %d vs %s it %d); lengths %d, %d",
					i, a[i].Source, a[i].Iteration, b[i].Source, b[i].Iteration, len(a), len(b))
			}
		}
		t.Fatalf("resumed archive differs (lengths %d, %d)", len(a), len(b))
	}
	// A finished search is a no-op.
	before := resumed.Len()
	if err := Search(context.Background(), searchConfig(&synthetic{spec: spec}, resumed, path, n)); err != nil || resumed.Len() != before {
		t.Fatalf("rerun of a finished search: err %v, %d -> %d entries", err, before, resumed.Len())
	}
}

func TestSearchConfigErrors(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	ev := &synthetic{spec: spec}
	for name, cfg := range map[string]Config{
		"no evaluator":    {Archive: &task.Archive{}, Evals: 10},
		"no archive":      {Evaluator: ev, Evals: 10},
		"too few evals":   {Evaluator: ev, Archive: &task.Archive{}, Evals: 1},
		"latency w/o fit": {Evaluator: ev, Archive: &task.Archive{}, Evals: 10, Objectives: []Objective{ObjLatency}},
		"bad objective":   {Evaluator: ev, Archive: &task.Archive{}, Evals: 10, Objectives: []Objective{"flops"}},
	} {
		if err := Search(context.Background(), cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestSearchSeeds: seeds are measured first, marked as seeds, count toward Evals, and are
// not measured again on a rerun; an arch outside the space fails the search.
func TestSearchSeeds(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	rng := rand.New(rand.NewPCG(3, 4))
	seeds := []supernet.Arch{RandomArch(spec, rng), RandomArch(spec, rng), spec.Largest()}
	const n = 40
	arch := &task.Archive{}
	ev := &synthetic{spec: spec}
	cfg := searchConfig(ev, arch, "", n)
	cfg.Seeds = seeds
	if err := Search(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	es := arch.Snapshot()
	if len(es) != n || ev.calls != n {
		t.Fatalf("%d entries from %d evaluations, want %d", len(es), ev.calls, n)
	}
	for i, s := range seeds[:2] {
		c, _ := spec.Canonical(s)
		if es[i].Hash != c.Hash() || es[i].Source != task.SourceSeed {
			t.Errorf("entry %d: %s from %q, want seed %s first", i, es[i].Hash[:12], es[i].Source, c.Hash()[:12])
		}
	}
	// The largest is a seed and also in the initial sample: measured once, as a seed.
	if e, ok := arch.Lookup(spec.Largest().Hash()); !ok || e.Source != task.SourceSeed {
		t.Errorf("largest subnet: %+v, %v; want measured as a seed", e.Source, ok)
	}
	calls := ev.calls
	cfg.Evals = n + 5
	if err := Search(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if got := ev.calls - calls; got != 5 {
		t.Errorf("rerun with 5 more evals made %d evaluations", got)
	}

	bad := searchConfig(&synthetic{spec: spec}, &task.Archive{}, "", n)
	bad.Seeds = []supernet.Arch{{KS: []int{3}, E: []int{3}, D: []int{2}, R: 1}}
	if err := Search(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("seed outside the space: err %v", err)
	}
}
