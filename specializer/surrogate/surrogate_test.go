package surrogate

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

func allModels() []Factory {
	return []Factory{
		func() Model { return NewRBF() },
		func() Model { return NewRBFEnsemble(0, 1) },
		func() Model { return NewGP(Matern52) },
		func() Model { return NewGP(SquaredExp) },
		func() Model { return NewMLP(1) },
		func() Model { return NewForest(1) },
	}
}

// TestModelsOnKnownFunctions asserts test-set Kendall tau per model. The
// thresholds sit about 0.08 below the lowest value measured over data seeds
// 1-4 (measured ranges in the comments); the test uses seed 1.
func TestModelsOnKnownFunctions(t *testing.T) {
	smooth, ints := smooth10(1), int22(1, 100, 200)
	tests := []struct {
		model  Factory
		data   dataset
		set    string
		minTau float64
	}{
		{allModels()[0], smooth, "smooth10", 0.74}, // 0.820-0.859
		{allModels()[1], smooth, "smooth10", 0.76}, // 0.840-0.865
		{allModels()[2], smooth, "smooth10", 0.76}, // 0.845-0.860
		{allModels()[3], smooth, "smooth10", 0.75}, // 0.831-0.847
		{allModels()[4], smooth, "smooth10", 0.71}, // 0.794-0.815
		{allModels()[5], smooth, "smooth10", 0.55}, // 0.636-0.741
		{allModels()[0], ints, "int22", 0.51},      // 0.592-0.667
		{allModels()[1], ints, "int22", 0.55},      // 0.629-0.682
		{allModels()[2], ints, "int22", 0.55},      // 0.632-0.684
		{allModels()[3], ints, "int22", 0.55},      // 0.634-0.682
		{allModels()[4], ints, "int22", 0.45},      // 0.533-0.671
		{allModels()[5], ints, "int22", 0.45},      // 0.528-0.607
	}
	for _, tc := range tests {
		m := tc.model()
		t.Run(tc.set+"/"+m.Name(), func(t *testing.T) {
			if err := m.Fit(tc.data.trX, tc.data.trY); err != nil {
				t.Fatal(err)
			}
			pred := m.Predict(tc.data.teX)
			tau := KendallTau(pred, tc.data.teY)
			t.Logf("%s on %s: test tau %.3f", m.Name(), tc.set, tau)
			if tau < tc.minTau {
				t.Errorf("tau %.3f < %.2f", tau, tc.minTau)
			}
			// Training rows are fitted at least as well as unseen ones.
			if trTau := KendallTau(m.Predict(tc.data.trX), tc.data.trY); trTau < tau-0.05 {
				t.Errorf("train tau %.3f below test tau %.3f", trTau, tau)
			}
		})
	}
}

func TestKendallTau(t *testing.T) {
	tests := []struct {
		name string
		a, b []float64
		want float64
	}{
		{"identical", []float64{1, 2, 3}, []float64{10, 20, 30}, 1},
		{"reversed", []float64{1, 2, 3}, []float64{3, 2, 1}, -1},
		{"one swap of four", []float64{1, 2, 3, 4}, []float64{1, 3, 2, 4}, 4.0 / 6},
		// 4 concordant, 0 discordant, one tie in a, one in b: 4 / sqrt(5*5).
		{"ties in both", []float64{1, 2, 2, 3}, []float64{1, 2, 3, 3}, 0.8},
		// scipy.stats.kendalltau documentation example.
		{"scipy example", []float64{12, 2, 1, 12, 2}, []float64{1, 4, 7, 1, 0}, -0.47140452079103173},
		{"joint tie only", []float64{1, 1, 2}, []float64{5, 5, 6}, 1},
		{"constant a is undefined", []float64{1, 1, 1}, []float64{1, 2, 3}, 0},
		{"single element", []float64{1}, []float64{1}, 0},
		{"length mismatch", []float64{1, 2}, []float64{1, 2, 3}, 0},
		{"empty", nil, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KendallTau(tc.a, tc.b); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("KendallTau = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSelectPicksTheRightModel(t *testing.T) {
	candidates := []Factory{
		func() Model { return NewGP(Matern52) },
		func() Model { return NewRBFEnsemble(10, 1) },
		func() Model { return NewForest(1) },
	}
	tests := []struct {
		name string
		data dataset
		want map[string]bool
	}{
		{"axis-aligned steps favour trees", steps10(1), map[string]bool{"random-forest": true}},
		{"smooth function favours GP or RBF", smooth10(1), map[string]bool{"gp-matern52": true, "rbf-ensemble": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, rep, err := Select(context.Background(), candidates, tc.data.trX, tc.data.trY, 5, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Scores) != len(candidates) {
				t.Fatalf("report has %d scores", len(rep.Scores))
			}
			for _, s := range rep.Scores {
				t.Logf("%-14s mean %.3f std %.3f", s.Name, s.Mean, s.Std)
				if s.Err != nil || len(s.Taus) != 5 {
					t.Errorf("%s: err %v, %d folds", s.Name, s.Err, len(s.Taus))
				}
				if mean, std := meanStd(s.Taus); mean != s.Mean || std != s.Std {
					t.Errorf("%s: reported mean/std %v/%v, folds give %v/%v", s.Name, s.Mean, s.Std, mean, std)
				}
			}
			best := rep.Scores[rep.Best]
			for _, s := range rep.Scores {
				if s.Mean-s.Std > best.Mean-best.Std {
					t.Errorf("chose %s but %s scores higher", best.Name, s.Name)
				}
			}
			if !tc.want[m.Name()] || m.Name() != best.Name {
				t.Errorf("selected %s (report says %s), want one of %v", m.Name(), best.Name, tc.want)
			}
			// The returned model is fitted on all data.
			if tau := KendallTau(m.Predict(tc.data.teX), tc.data.teY); tau < 0.7 {
				t.Errorf("selected model's test tau %.3f", tau)
			}
		})
	}
}

func TestCrossValidate(t *testing.T) {
	ds := int22(2, 60, 0)
	newForest := func() Model { return &Forest{Trees: 20, Seed: 3} }
	a, err := CrossValidate(context.Background(), newForest, ds.trX, ds.trY, 4, 9)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := CrossValidate(context.Background(), newForest, ds.trX, ds.trY, 4, 9)
	c, _ := CrossValidate(context.Background(), newForest, ds.trX, ds.trY, 4, 10)
	if len(a) != 4 || !reflect.DeepEqual(a, b) {
		t.Errorf("fold taus %v and %v, want 4 equal values", a, b)
	}
	if reflect.DeepEqual(a, c) {
		t.Error("different fold seeds gave identical taus")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CrossValidate(ctx, newForest, ds.trX, ds.trY, 4, 9); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err %v", err)
	}
	if _, _, err := Select(ctx, []Factory{newForest}, ds.trX, ds.trY, 4, 9); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled Select: err %v", err)
	}

	errCases := []struct {
		name string
		nf   Factory
		X    [][]float64
		y    []float64
		k    int
	}{
		{"n < k", newForest, ds.trX[:3], ds.trY[:3], 5},
		{"folds of one row", newForest, ds.trX[:7], ds.trY[:7], 4},
		{"k = 1", newForest, ds.trX, ds.trY, 1},
		{"mismatched lengths", newForest, ds.trX, ds.trY[:10], 4},
		{"nil factory", nil, ds.trX, ds.trY, 4},
		{"empty", newForest, nil, nil, 4},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CrossValidate(context.Background(), tc.nf, tc.X, tc.y, tc.k, 1); err == nil {
				t.Error("want error")
			}
			if _, _, err := Select(context.Background(), []Factory{tc.nf}, tc.X, tc.y, tc.k, 1); err == nil {
				t.Error("Select: want error")
			}
		})
	}
	if _, _, err := Select(context.Background(), nil, ds.trX, ds.trY, 4, 1); err == nil {
		t.Error("Select with no candidates: want error")
	}
}

// failing is a model whose Fit always fails, to check Select skips it.
type failing struct{}

func (failing) Fit([][]float64, []float64) error { return errors.New("cannot fit") }
func (failing) Predict(X [][]float64) []float64  { return nanRows(len(X)) }
func (failing) Name() string                     { return "failing" }

func TestSelectSkipsFailingCandidate(t *testing.T) {
	ds := int22(3, 40, 0)
	m, rep, err := Select(context.Background(), []Factory{func() Model { return failing{} }, func() Model { return &Forest{Trees: 10, Seed: 1} }}, ds.trX, ds.trY, 4, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name() != "random-forest" || rep.Best != 1 || rep.Scores[0].Err == nil {
		t.Errorf("chose %s, report %+v", m.Name(), rep)
	}
}

func TestDegenerateInputs(t *testing.T) {
	base := smooth10(4)
	constY := make([]float64, 30)
	for i := range constY {
		constY[i] = 0.75
	}
	dupX := make([][]float64, 30)
	dupY := make([]float64, 30)
	for i := range dupX {
		dupX[i] = base.trX[i%5] // only five distinct rows, with conflicting targets
		dupY[i] = base.trY[i%5] + 0.01*float64(i%3)
	}
	sameX := make([][]float64, 8)
	for i := range sameX {
		sameX[i] = base.trX[0]
	}
	cases := []struct {
		name  string
		X     [][]float64
		y     []float64
		check func(t *testing.T, pred []float64)
	}{
		{"constant y", base.trX[:30], constY, func(t *testing.T, pred []float64) {
			for _, p := range pred {
				if math.Abs(p-0.75) > 1e-4 { // the MLP reaches the constant only approximately
					t.Fatalf("prediction %v for constant target 0.75", p)
				}
			}
		}},
		{"duplicate rows", dupX, dupY, nil},
		{"all rows identical", sameX, base.trY[:8], nil},
		{"single row", base.trX[:1], base.trY[:1], func(t *testing.T, pred []float64) {
			for _, p := range pred {
				if math.Abs(p-base.trY[0]) > 1e-2*math.Abs(base.trY[0]) {
					t.Fatalf("prediction %v from one row with target %v", p, base.trY[0])
				}
			}
		}},
		{"fewer rows than features", base.trX[:4], base.trY[:4], nil},
		{"constant feature column", constColumn(base.trX[:30]), base.trY[:30], nil},
	}
	for _, tc := range cases {
		for _, nf := range allModels() {
			m := nf()
			t.Run(tc.name+"/"+m.Name(), func(t *testing.T) {
				if err := m.Fit(tc.X, tc.y); err != nil {
					t.Fatalf("fit: %v", err)
				}
				pred := m.Predict(append(append([][]float64{}, tc.X...), base.teX[:20]...))
				if !finite(pred) {
					t.Fatalf("non-finite prediction %v", pred)
				}
				if tc.check != nil {
					tc.check(t, pred)
				}
			})
		}
	}

	bad := []struct {
		name string
		X    [][]float64
		y    []float64
	}{
		{"empty", nil, nil},
		{"length mismatch", base.trX[:5], base.trY[:4]},
		{"ragged rows", [][]float64{{1, 2}, {1}}, []float64{1, 2}},
		{"empty rows", [][]float64{{}, {}}, []float64{1, 2}},
		{"NaN feature", [][]float64{{1, math.NaN()}, {1, 2}}, []float64{1, 2}},
		{"Inf target", [][]float64{{1, 1}, {1, 2}}, []float64{1, math.Inf(1)}},
	}
	for _, tc := range bad {
		for _, nf := range allModels() {
			m := nf()
			t.Run(tc.name+"/"+m.Name(), func(t *testing.T) {
				if err := m.Fit(tc.X, tc.y); err == nil {
					t.Error("want error")
				}
				if p := m.Predict(base.teX[:2]); len(p) != 2 || !math.IsNaN(p[0]) {
					t.Errorf("model after failed fit predicted %v, want NaN", p)
				}
			})
		}
	}

	// A fitted model marks rows of the wrong width as NaN and still predicts the others.
	for _, nf := range allModels() {
		m := nf()
		if err := m.Fit(base.trX[:20], base.trY[:20]); err != nil {
			t.Fatal(err)
		}
		p := m.Predict([][]float64{base.teX[0], {1, 2}})
		if math.IsNaN(p[0]) || !math.IsNaN(p[1]) {
			t.Errorf("%s: predictions %v, want finite then NaN", m.Name(), p)
		}
	}
}

func constColumn(X [][]float64) [][]float64 {
	out := make([][]float64, len(X))
	for i, row := range X {
		out[i] = append([]float64(nil), row...)
		out[i][2] = 3
	}
	return out
}

func TestDeterministicFits(t *testing.T) {
	ds := int22(5, 60, 40)
	seeded := []func(seed uint64) Model{
		func(s uint64) Model { return NewRBFEnsemble(5, s) },
		func(s uint64) Model { return NewMLP(s) },
		func(s uint64) Model { return &Forest{Trees: 20, Seed: s} },
	}
	for _, mk := range seeded {
		fit := func(seed uint64) []float64 {
			m := mk(seed)
			if err := m.Fit(ds.trX, ds.trY); err != nil {
				t.Fatal(err)
			}
			return m.Predict(ds.teX)
		}
		a, b, c := fit(1), fit(1), fit(2)
		name := mk(0).Name()
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: equal seeds gave different predictions", name)
		}
		if reflect.DeepEqual(a, c) {
			t.Errorf("%s: different seeds gave identical predictions", name)
		}
	}
	for _, k := range []Kernel{Matern52, SquaredExp} {
		g1, g2 := NewGP(k), NewGP(k)
		_ = g1.Fit(ds.trX, ds.trY)
		_ = g2.Fit(ds.trX, ds.trY)
		if !reflect.DeepEqual(g1.Predict(ds.teX), g2.Predict(ds.teX)) {
			t.Errorf("%s: refits differ", g1.Name())
		}
		ell, s2, noise, lml := g1.Hyper()
		t.Logf("%s: length scale %.3g, signal variance %.3g, noise ratio %.3g, log ML %.4g", g1.Name(), ell, s2, noise, lml)
		if !(ell > 0 && s2 > 0 && noise > 0) || math.IsNaN(lml) {
			t.Errorf("%s: bad hyperparameters", g1.Name())
		}
	}
}

func TestGPInterpolatesExactDataAndSmoothsNoise(t *testing.T) {
	// Noise-free smooth data should be (nearly) interpolated; structure-free
	// targets should shrink test predictions towards the mean. Guards the sign
	// and scale of the marginal-likelihood search.
	ds := sample(6, 60, 50, func(r *rand.Rand) []float64 { return []float64{r.Float64(), r.Float64()} },
		func(x []float64) float64 { return math.Sin(3*x[0]) + math.Cos(2*x[1]) })
	noisy := make([]float64, len(ds.trY))
	for i := range noisy {
		noisy[i] = math.Sin(1e4 * float64(i*i+1)) // deterministic, structure-free
	}
	for _, k := range []Kernel{Matern52, SquaredExp} {
		g := NewGP(k)
		if err := g.Fit(ds.trX, ds.trY); err != nil {
			t.Fatal(err)
		}
		_, ySD := standardize(ds.trY)
		r, rTest := rmse(g.Predict(ds.trX), ds.trY)/ySD, rmse(g.Predict(ds.teX), ds.teY)/ySD
		t.Logf("%s: RMSE / target SD on exact 2-D data: train %.2g, test %.2g", g.Name(), r, rTest)
		if r > 1e-3 || rTest > 0.02 {
			t.Errorf("%s: RMSE / target SD train %.3g, test %.3g on exact data", g.Name(), r, rTest)
		}
		if err := g.Fit(ds.trX, noisy); err != nil {
			t.Fatal(err)
		}
		_, nSD := standardize(noisy)
		_, pSD := standardize(g.Predict(ds.teX))
		t.Logf("%s: test prediction SD %.3f vs target SD %.3f on noise", g.Name(), pSD, nSD)
		if pSD > 0.5*nSD {
			t.Errorf("%s: predictions on unseen rows vary with SD %.3f for noise of SD %.3f", g.Name(), pSD, nSD)
		}
	}
}

func rmse(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	return math.Sqrt(s / float64(len(a)))
}
