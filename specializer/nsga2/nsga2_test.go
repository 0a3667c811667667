package nsga2

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestFronts(t *testing.T) {
	tests := []struct {
		name string
		objs [][]float64
		cv   []float64
		want [][]int
	}{
		{
			name: "three layers",
			objs: [][]float64{{1, 5}, {2, 2}, {5, 1}, {3, 4}, {4, 4}, {6, 6}, {2, 2}},
			want: [][]int{{0, 1, 2, 6}, {3}, {4}, {5}},
		},
		{
			name: "infeasible after feasible, smaller violation first",
			objs: [][]float64{{0, 0}, {5, 5}, {1, 1}, {9, 9}},
			cv:   []float64{2, 0, 0.5, 0},
			want: [][]int{{1}, {3}, {2}, {0}},
		},
		{
			name: "equal violation ties",
			objs: [][]float64{{0, 0}, {5, 5}},
			cv:   []float64{1, 1},
			want: [][]int{{0, 1}},
		},
		{name: "empty", objs: nil, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Fronts(tc.objs, tc.cv); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Fronts = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConstrainedDominates(t *testing.T) {
	a, b := []float64{1, 1}, []float64{2, 2}
	tests := []struct {
		name string
		x    []float64
		cvx  float64
		y    []float64
		cvy  float64
		want bool
	}{
		{"pareto feasible", a, 0, b, 0, true},
		{"pareto reversed", b, 0, a, 0, false},
		{"feasible beats infeasible even when worse", b, 0, a, 0.1, true},
		{"infeasible never beats feasible", a, 0.1, b, 0, false},
		{"smaller violation wins", b, 0.1, a, 0.2, true},
		{"larger violation loses", a, 0.2, b, 0.1, false},
		{"equal violation: no dominance", a, 0.3, b, 0.3, false},
		{"equal points", a, 0, a, 0, false},
		{"trade-off", []float64{1, 3}, 0, []float64{3, 1}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ConstrainedDominates(tc.x, tc.cvx, tc.y, tc.cvy); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCrowding(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name string
		objs [][]float64
		want []float64
	}{
		// Ranges 4 and 4: (1,3) gets (2-0)/4 + (4-2)/4 = 1, (2,2) gets (4-1)/4 + (3-0)/4 = 1.5.
		{"line", [][]float64{{0, 4}, {1, 3}, {2, 2}, {4, 0}}, []float64{inf, 1, 1.5, inf}},
		{"unordered input", [][]float64{{4, 0}, {2, 2}, {0, 4}, {1, 3}}, []float64{inf, 1.5, inf, 1}},
		{"two points", [][]float64{{0, 1}, {1, 0}}, []float64{inf, inf}},
		{"constant objective is skipped", [][]float64{{0, 5}, {1, 5}, {3, 5}}, []float64{inf, 1, inf}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Crowding(tc.objs)
			for i := range got {
				if !(got[i] == tc.want[i] || math.Abs(got[i]-tc.want[i]) < 1e-12) {
					t.Fatalf("Crowding = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestSurviveKeepsBestFrontsAndSpread(t *testing.T) {
	pop := []Individual{
		{Objs: []float64{0, 4}}, {Objs: []float64{1, 3}}, {Objs: []float64{1.1, 2.9}}, {Objs: []float64{4, 0}},
		{Objs: []float64{5, 5}}, {Objs: []float64{0, 0}, CV: 1},
	}
	got := survive(pop, 3)
	var objs [][]float64
	for _, ind := range got {
		objs = append(objs, ind.Objs)
	}
	// Front 0 has four points; the two extremes (+Inf) stay, then the more
	// isolated interior point: (1.1, 2.9) has crowding 3/4+3/4, (1, 3) only 1.1/4+1.1/4.
	want := [][]float64{{0, 4}, {4, 0}, {1.1, 2.9}}
	if !reflect.DeepEqual(objs, want) {
		t.Errorf("survivors %v, want %v", objs, want)
	}
}

func TestNonDominated(t *testing.T) {
	pts := [][]float64{{1, 5}, {2, 2}, {3, 3}, {5, 1}, {2, 2}, {0, 9}}
	if got, want := NonDominated(pts), []int{0, 1, 3, 4, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("NonDominated = %v, want %v", got, want)
	}
}

func TestHypervolume2D(t *testing.T) {
	tests := []struct {
		name string
		pts  [][]float64
		ref  []float64
		want float64
	}{
		{"single point", [][]float64{{1, 1}}, []float64{3, 3}, 4},
		{"staircase", [][]float64{{1, 3}, {2, 2}, {3, 1}}, []float64{4, 4}, 3 + 2 + 1},
		{"dominated and duplicate points add nothing", [][]float64{{1, 3}, {2, 2}, {3, 1}, {3, 3}, {2, 2}}, []float64{4, 4}, 6},
		{"points beyond the reference ignored", [][]float64{{5, 0}, {0, 5}, {4, 1}, {2, 2}}, []float64{4, 4}, 4},
		{"ZDT1-like two points", [][]float64{{0, 1}, {1, 0}}, []float64{1.1, 1.1}, 1.1*0.1 + 0.1*1},
		{"empty", nil, []float64{1, 1}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Hypervolume2D(tc.pts, tc.ref); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("Hypervolume2D = %v, want %v", got, tc.want)
			}
		})
	}
	// Analytic check: a dense sample of the front f2 = 1 - f1 with reference (1, 1) tends to 1/2.
	var line [][]float64
	for i := 0; i <= 10000; i++ {
		f := float64(i) / 10000
		line = append(line, []float64{f, 1 - f})
	}
	if got := Hypervolume2D(line, []float64{1, 1}); math.Abs(got-0.5) > 1e-4 {
		t.Errorf("line hypervolume %v, want about 0.5", got)
	}
}

func TestIGD(t *testing.T) {
	ref := [][]float64{{0, 1}, {1, 0}}
	if got := IGD([][]float64{{0, 1}, {1, 0}}, ref); got != 0 {
		t.Errorf("IGD of the reference itself = %v", got)
	}
	// Distances from (0, 2) to the reference points are 1 and sqrt(1+4).
	if got, want := IGD([][]float64{{0, 2}}, ref), (1+math.Sqrt(5))/2; math.Abs(got-want) > 1e-12 {
		t.Errorf("IGD = %v, want %v", got, want)
	}
	if got := IGD(nil, ref); !math.IsInf(got, 1) {
		t.Errorf("IGD of empty front = %v, want +Inf", got)
	}
}

func TestPickSpread(t *testing.T) {
	var front [][]float64 // points on f2 = 1 - f1, given in reverse order
	for i := 10; i >= 0; i-- {
		f := float64(i) / 10
		front = append(front, []float64{f, 1 - f})
	}
	tests := []struct {
		k    int
		want []int // indices into front, ordered by f1
	}{
		{1, []int{10}},
		{2, []int{10, 0}},
		{3, []int{10, 5, 0}},
		{6, []int{10, 8, 6, 4, 2, 0}},
		{11, []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{20, []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{0, nil},
	}
	for _, tc := range tests {
		if got := PickSpread(front, tc.k); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PickSpread(k=%d) = %v, want %v", tc.k, got, tc.want)
		}
	}
	// A crowded cluster must not attract several picks: 10 points near f1=0 and 2 far points.
	var clustered [][]float64
	for i := 0; i < 10; i++ {
		clustered = append(clustered, []float64{float64(i) * 0.001, 1 - float64(i)*0.001})
	}
	clustered = append(clustered, []float64{0.5, 0.5}, []float64{1, 0})
	if got, want := PickSpread(clustered, 3), []int{0, 10, 11}; !reflect.DeepEqual(got, want) {
		t.Errorf("clustered PickSpread = %v, want %v", got, want)
	}
}

// ofaLike is an integer space shaped like an OFA MobileNetV3 encoding: a
// resolution gene, then per stage a depth gene (2..4) and four block genes
// (0..8, kernel x expand code). Valid genomes have zero codes for blocks
// beyond the stage depth and non-zero codes for blocks within it.
func ofaLike(repair bool, check func([]float64) error) Problem {
	const stages, blocks = 5, 4
	vars := []Var{{Lo: 0, Hi: 4, Integer: true}}
	for s := 0; s < stages; s++ {
		vars = append(vars, Var{Lo: 2, Hi: 4, Integer: true})
		for b := 0; b < blocks; b++ {
			vars = append(vars, Var{Lo: 0, Hi: 8, Integer: true})
		}
	}
	p := Problem{Vars: vars, NumObj: 2}
	valid := func(g []float64) bool {
		for s := 0; s < stages; s++ {
			base := 1 + s*(blocks+1)
			depth := int(g[base])
			for b := 0; b < blocks; b++ {
				if code := g[base+1+b]; (b < depth) != (code > 0) {
					return false
				}
			}
		}
		return true
	}
	if repair {
		p.Repair = func(g []float64) {
			for s := 0; s < stages; s++ {
				base := 1 + s*(blocks+1)
				depth := int(g[base])
				for b := 0; b < blocks; b++ {
					i := base + 1 + b
					if b >= depth {
						g[i] = 0
					} else if g[i] == 0 {
						g[i] = 1
					}
				}
			}
		}
	}
	p.Evaluate = func(_ context.Context, gs [][]float64) ([][]float64, []float64, error) {
		objs := make([][]float64, len(gs))
		cv := make([]float64, len(gs))
		for k, g := range gs {
			if check != nil {
				if err := check(g); err != nil {
					return nil, nil, err
				}
			}
			if !valid(g) {
				cv[k] = 1
			}
			size, acc := 1+g[0], 0.0
			for s := 0; s < stages; s++ {
				base := 1 + s*(blocks+1)
				for b := 0; b < blocks; b++ {
					c := g[base+1+b]
					size += c
					acc += math.Sqrt(c) * (1 + 0.1*float64(s))
				}
			}
			objs[k] = []float64{-acc * (1 + 0.05*g[0]), size}
		}
		return objs, cv, nil
	}
	return p
}

func TestIntegerRepairNeverInvalid(t *testing.T) {
	seen := map[string]bool{}
	var p Problem
	check := func(g []float64) error {
		if !inBounds(g, p.Vars) {
			return errors.New("genome out of bounds")
		}
		k := key(g)
		if seen[k] {
			return errors.New("genome evaluated twice")
		}
		seen[k] = true
		return nil
	}
	p = ofaLike(true, check)
	seed := make([]float64, len(p.Vars)) // an invalid, all-zero archive entry must be repaired
	for _, ct := range []IntCrossover{UniformCrossover, TwoPointCrossover} {
		clear(seen)
		gens := 0
		res, err := Run(context.Background(), p, Config{PopSize: 40, Generations: 30, Seed: 3, IntCrossover: ct, Initial: [][]float64{seed, seed},
			OnGeneration: func(pr Progress) {
				gens++
				inPop := map[string]bool{}
				for _, ind := range pr.Population {
					if ind.CV != 0 {
						t.Errorf("generation %d: invalid genome %v", pr.Generation, ind.Genome)
					}
					if inPop[key(ind.Genome)] {
						t.Errorf("generation %d: duplicate genome %v", pr.Generation, ind.Genome)
					}
					inPop[key(ind.Genome)] = true
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if gens != 31 || res.Generations != 30 || len(res.Population) != 40 {
			t.Errorf("crossover %d: %d callbacks, %d generations, population %d", ct, gens, res.Generations, len(res.Population))
		}
		if res.Evaluations != len(seen) {
			t.Errorf("evaluations %d, distinct genomes %d", res.Evaluations, len(seen))
		}
	}

	// Without the repair hook the same space does produce invalid genomes,
	// so the test above really exercises the hook.
	p2 := ofaLike(false, nil)
	res, err := Run(context.Background(), p2, Config{PopSize: 40, Generations: 0, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	invalid := 0
	for _, ind := range res.Population {
		if ind.CV != 0 {
			invalid++
		}
	}
	if invalid == 0 {
		t.Error("random genomes without repair were all valid; the repair test proves nothing")
	}
}

func TestRepairOutOfBoundsIsError(t *testing.T) {
	p := ofaLike(false, nil)
	p.Repair = func(g []float64) { g[0] = 99 }
	if _, err := Run(context.Background(), p, Config{PopSize: 10, Generations: 2, Seed: 1}); err == nil {
		t.Fatal("want error for a repair that leaves the bounds")
	}
}

func TestDeterminism(t *testing.T) {
	run := func(seed uint64) [][]float64 {
		res, err := Run(context.Background(), ofaLike(true, nil), Config{PopSize: 30, Generations: 20, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		var gs [][]float64
		for _, ind := range res.Population {
			gs = append(gs, ind.Genome)
		}
		return gs
	}
	a, b, c := run(11), run(11), run(12)
	if !reflect.DeepEqual(a, b) {
		t.Error("equal seeds gave different populations")
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different seeds gave identical populations")
	}
	r1, _ := Run(context.Background(), zdt(30, true), Config{PopSize: 20, Generations: 10, Seed: 5})
	r2, _ := Run(context.Background(), zdt(30, true), Config{PopSize: 20, Generations: 10, Seed: 5})
	if !reflect.DeepEqual(r1, r2) {
		t.Error("real-valued runs with equal seeds differ")
	}
}

func TestCancelReturnsBestSoFar(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := Run(ctx, zdt(30, true), Config{PopSize: 50, Generations: 100, Seed: 1, OnGeneration: func(p Progress) {
		if p.Generation == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res.Generations != 3 || len(res.Population) != 50 || len(res.Front()) == 0 {
		t.Errorf("got %d generations, population %d, front %d", res.Generations, len(res.Population), len(res.Front()))
	}

	// An evaluation that observes the cancellation itself also yields the last population.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	p := zdt(30, true)
	inner := p.Evaluate
	calls := 0
	p.Evaluate = func(ctx context.Context, gs [][]float64) ([][]float64, []float64, error) {
		calls++
		if calls == 3 {
			cancel2()
			return nil, nil, ctx.Err()
		}
		return inner(ctx, gs)
	}
	res, err = Run(ctx2, p, Config{PopSize: 20, Generations: 10, Seed: 1})
	if !errors.Is(err, context.Canceled) || res.Generations != 1 || len(res.Population) != 20 {
		t.Errorf("err %v, generations %d, population %d", err, res.Generations, len(res.Population))
	}
}

func TestSeedsAndSmallSpace(t *testing.T) {
	// Four distinct genomes exist; the run must stop instead of looping and never duplicate.
	p := Problem{Vars: []Var{{0, 1, true}, {0, 1, true}}, NumObj: 2, Evaluate: func(_ context.Context, gs [][]float64) ([][]float64, []float64, error) {
		objs := make([][]float64, len(gs))
		for i, g := range gs {
			objs[i] = []float64{g[0], g[1]}
		}
		return objs, nil, nil
	}}
	seeds := [][]float64{{1, 1}, {1, 1}, {0.6, 0.2}} // duplicate and a non-integer seed (snapped to {1, 0})
	res, err := Run(context.Background(), p, Config{PopSize: 10, Generations: 5, Seed: 1, Initial: seeds})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Population) != 4 || res.Evaluations != 4 {
		t.Fatalf("population %d, evaluations %d, want 4 and 4", len(res.Population), res.Evaluations)
	}
	if got := res.Front(); len(got) != 1 || !reflect.DeepEqual(got[0].Genome, []float64{0, 0}) {
		t.Errorf("front %v, want only {0, 0}", got)
	}
}

func TestRunErrors(t *testing.T) {
	good := zdt(3, true)
	bad := func(f func(*Problem)) Problem { p := good; p.Vars = append([]Var(nil), good.Vars...); f(&p); return p }
	evalErr := errors.New("boom")
	tests := []struct {
		name string
		p    Problem
		cfg  Config
	}{
		{"no vars", bad(func(p *Problem) { p.Vars = nil }), Config{}},
		{"inverted bounds", bad(func(p *Problem) { p.Vars[0] = Var{Lo: 1, Hi: 0} }), Config{}},
		{"fractional integer bounds", bad(func(p *Problem) { p.Vars[0] = Var{Lo: 0, Hi: 1.5, Integer: true} }), Config{}},
		{"no evaluate", bad(func(p *Problem) { p.Evaluate = nil }), Config{}},
		{"tiny population", good, Config{PopSize: 1}},
		{"bad probability", good, Config{MutationProb: 2}},
		{"wrong seed length", good, Config{Initial: [][]float64{{1}}}},
		{"evaluate error", bad(func(p *Problem) {
			p.Evaluate = func(context.Context, [][]float64) ([][]float64, []float64, error) { return nil, nil, evalErr }
		}), Config{}},
		{"short output", bad(func(p *Problem) {
			p.Evaluate = func(_ context.Context, gs [][]float64) ([][]float64, []float64, error) { return nil, nil, nil }
		}), Config{}},
		{"NaN objective", bad(func(p *Problem) {
			p.Evaluate = func(_ context.Context, gs [][]float64) ([][]float64, []float64, error) {
				o := make([][]float64, len(gs))
				for i := range o {
					o[i] = []float64{math.NaN(), 0}
				}
				return o, nil, nil
			}
		}), Config{}},
		{"negative violation", bad(func(p *Problem) {
			p.Evaluate = func(_ context.Context, gs [][]float64) ([][]float64, []float64, error) {
				o, _, _ := good.Evaluate(context.Background(), gs)
				cv := make([]float64, len(gs))
				cv[0] = -1
				return o, cv, nil
			}
		}), Config{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Generations = 2
			if tc.cfg.PopSize == 0 {
				tc.cfg.PopSize = 10
			}
			if _, err := Run(context.Background(), tc.p, tc.cfg); err == nil {
				t.Error("want error")
			}
		})
	}
}

func TestConstrainedRunRespectsConstraint(t *testing.T) {
	// ZDT1 restricted to f1 >= 0.5 via a violation; the final front must be feasible and respect it.
	p := zdt(10, true)
	inner := p.Evaluate
	p.Evaluate = func(ctx context.Context, gs [][]float64) ([][]float64, []float64, error) {
		o, _, err := inner(ctx, gs)
		cv := make([]float64, len(gs))
		for i := range gs {
			cv[i] = math.Max(0, 0.5-gs[i][0])
		}
		return o, cv, err
	}
	res, err := Run(context.Background(), p, Config{PopSize: 40, Generations: 60, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	front := res.Front()
	if len(front) < 10 {
		t.Fatalf("front has %d points", len(front))
	}
	for _, ind := range front {
		if ind.Objs[0] < 0.5 {
			t.Errorf("front point %v violates f1 >= 0.5", ind.Objs)
		}
	}
}
