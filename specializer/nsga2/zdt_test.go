package nsga2

import (
	"context"
	"math"
	"testing"
)

// zdt returns the ZDT1 (convex=true) or ZDT2 problem with n real variables in [0, 1].
func zdt(n int, convex bool) Problem {
	vars := make([]Var, n)
	for i := range vars {
		vars[i] = Var{Lo: 0, Hi: 1}
	}
	return Problem{Vars: vars, NumObj: 2, Evaluate: func(_ context.Context, gs [][]float64) ([][]float64, []float64, error) {
		objs := make([][]float64, len(gs))
		for k, x := range gs {
			s := 0.0
			for _, v := range x[1:] {
				s += v
			}
			g := 1 + 9*s/float64(n-1)
			r := x[0] / g
			if convex {
				objs[k] = []float64{x[0], g * (1 - math.Sqrt(r))}
			} else {
				objs[k] = []float64{x[0], g * (1 - r*r)}
			}
		}
		return objs, nil, nil
	}}
}

// zdtFront samples m points of the analytic Pareto front, uniform in f1.
func zdtFront(m int, convex bool) [][]float64 {
	out := make([][]float64, m)
	for i := range out {
		f1 := float64(i) / float64(m-1)
		if convex {
			out[i] = []float64{f1, 1 - math.Sqrt(f1)}
		} else {
			out[i] = []float64{f1, 1 - f1*f1}
		}
	}
	return out
}

func objsOf(pop []Individual) [][]float64 {
	out := make([][]float64, len(pop))
	for i, ind := range pop {
		out[i] = ind.Objs
	}
	return out
}

// zdtGenerations is the documented budget: population 100 for 250 generations
// (25,100 evaluations) reaches IGD <= 0.01 on ZDT1 and ZDT2 with 30 variables.
const zdtGenerations = 250

func TestZDT(t *testing.T) {
	ref := map[bool][][]float64{true: zdtFront(1000, true), false: zdtFront(1000, false)}
	for _, tc := range []struct {
		name   string
		convex bool
		seed   uint64
	}{
		{"ZDT1", true, 1},
		{"ZDT2", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), zdt(30, tc.convex), Config{PopSize: 100, Generations: zdtGenerations, Seed: tc.seed})
			if err != nil {
				t.Fatal(err)
			}
			igd := IGD(objsOf(res.Front()), ref[tc.convex])
			t.Logf("%s: IGD %.5f after %d generations, %d evaluations, front size %d", tc.name, igd, res.Generations, res.Evaluations, len(res.Front()))
			if igd > 0.01 {
				t.Errorf("IGD %.5f > 0.01", igd)
			}
		})
	}
}
