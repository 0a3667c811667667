package surrogate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// CrossValidate runs k-fold cross-validation of the models newModel makes and
// returns Kendall's tau between predictions and targets on each held-out
// fold. Rows are shuffled with seed; every fold holds at least two rows, so
// len(X) >= 2k is required, and k >= 2.
func CrossValidate(ctx context.Context, newModel Factory, X [][]float64, y []float64, k int, seed uint64) ([]float64, error) {
	if newModel == nil {
		return nil, errors.New("cross-validate: nil factory")
	}
	if _, err := checkXY(X, y, 1); err != nil {
		return nil, fmt.Errorf("cross-validate: %w", err)
	}
	if k < 2 {
		return nil, fmt.Errorf("cross-validate: %d folds, need at least 2", k)
	}
	if len(X) < 2*k {
		return nil, fmt.Errorf("cross-validate: %d rows cannot fill %d folds of at least 2", len(X), k)
	}
	perm := rand.New(rand.NewPCG(seed, 0x63762d666f6c6473)).Perm(len(X))
	taus := make([]float64, 0, k)
	for f := 0; f < k; f++ {
		if err := ctx.Err(); err != nil {
			return taus, fmt.Errorf("cross-validate: fold %d: %w", f, err)
		}
		lo, hi := f*len(X)/k, (f+1)*len(X)/k
		var trX, teX [][]float64
		var trY, teY []float64
		for p, i := range perm {
			if p >= lo && p < hi {
				teX, teY = append(teX, X[i]), append(teY, y[i])
			} else {
				trX, trY = append(trX, X[i]), append(trY, y[i])
			}
		}
		m := newModel()
		if err := m.Fit(trX, trY); err != nil {
			return taus, fmt.Errorf("cross-validate: fold %d: %w", f, err)
		}
		pred := m.Predict(teX)
		if !finite(pred) {
			return taus, fmt.Errorf("cross-validate: fold %d: %s predicted a non-finite value", f, m.Name())
		}
		taus = append(taus, KendallTau(pred, teY))
	}
	return taus, nil
}

// Score is one candidate's cross-validation result.
type Score struct {
	Name      string
	Taus      []float64 // Kendall tau per fold
	Mean, Std float64   // mean and sample standard deviation of Taus
	Err       error     // set when the candidate failed; it is then never chosen
}

// Report lists every candidate of Select in the given order.
type Report struct {
	Scores []Score
	Best   int // index into Scores of the chosen candidate
}

// Select is adaptive switching: it cross-validates every candidate with the
// same folds, chooses the one with the highest mean - std of Kendall tau
// (the first on ties), fits it on all data and returns it with the report.
// Candidates that fail are reported and skipped; if all fail it is an error.
func Select(ctx context.Context, candidates []Factory, X [][]float64, y []float64, k int, seed uint64) (Model, Report, error) {
	rep := Report{Best: -1}
	if len(candidates) == 0 {
		return nil, rep, errors.New("select: no candidates")
	}
	bestScore := math.Inf(-1)
	for c, nf := range candidates {
		name := fmt.Sprintf("candidate %d", c)
		if nf != nil {
			name = nf().Name()
		}
		taus, err := CrossValidate(ctx, nf, X, y, k, seed)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, rep, fmt.Errorf("select: %w", ctxErr)
		}
		s := Score{Name: name, Taus: taus, Err: err}
		if err == nil {
			s.Mean, s.Std = meanStd(taus)
			if v := s.Mean - s.Std; v > bestScore {
				bestScore, rep.Best = v, c
			}
		}
		rep.Scores = append(rep.Scores, s)
	}
	if rep.Best < 0 {
		return nil, rep, fmt.Errorf("select: every candidate failed, first: %w", rep.Scores[0].Err)
	}
	m := candidates[rep.Best]()
	if err := m.Fit(X, y); err != nil {
		return nil, rep, fmt.Errorf("select: fit %s on all data: %w", m.Name(), err)
	}
	return m, rep, nil
}

func meanStd(v []float64) (mean, std float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	if len(v) < 2 {
		return mean, 0
	}
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)-1))
}
