package surrogate

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// RBF is a cubic radial basis function interpolant with a linear tail,
// s(x) = sum_i lambda_i |x - x_i|^3 + c0 + c.x, fitted on features scaled to
// [0, 1] and standardised targets. Identical training rows are merged by
// averaging their targets.
type RBF struct {
	// Eta is added to the kernel diagonal for numerical stability (pySOT's
	// default is 1e-6); zero means 1e-6, a negative value means none.
	Eta float64

	sc           scaler
	centers      [][]float64
	lambda, tail []float64 // tail[0] constant, tail[1:] linear
	yMean, yStd  float64
	fitted       bool
}

// NewRBF returns an unfitted cubic RBF interpolant.
func NewRBF() *RBF { return &RBF{} }

// Name implements Model.
func (m *RBF) Name() string { return "rbf" }

// Fit implements Model.
func (m *RBF) Fit(X [][]float64, y []float64) error {
	m.fitted = false
	if _, err := checkXY(X, y, 1); err != nil {
		return fmt.Errorf("rbf: %w", err)
	}
	eta := m.Eta
	if eta == 0 {
		eta = 1e-6
	}
	eta = math.Max(eta, 0)
	ux, uy := dedupe(X, y)
	m.sc = newScaler(ux, 1, 0)
	z := m.sc.applyAll(ux)
	m.yMean, m.yStd = standardize(uy)
	n, d := len(z), len(z[0])
	size := n + d + 1
	a := mat.NewDense(size, size, nil)
	b := mat.NewVecDense(size, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < i; j++ {
			r := math.Sqrt(sqDist(z[i], z[j]))
			a.Set(i, j, r*r*r)
			a.Set(j, i, r*r*r)
		}
		a.Set(i, i, eta)
		a.Set(i, n, 1)
		a.Set(n, i, 1)
		for k := 0; k < d; k++ {
			a.Set(i, n+1+k, z[i][k])
			a.Set(n+1+k, i, z[i][k])
		}
		b.SetVec(i, (uy[i]-m.yMean)/m.yStd)
	}
	sol, err := solveSquare(a, b)
	if err != nil {
		return fmt.Errorf("rbf: %w", err)
	}
	m.centers = z
	m.lambda = append([]float64(nil), sol[:n]...)
	m.tail = append([]float64(nil), sol[n:]...)
	m.fitted = true
	return nil
}

// solveSquare solves a x = b by LU and falls back to the minimum-norm least
// squares solution by SVD when the system is singular or ill-conditioned,
// which happens for fewer points than dimensions + 1.
func solveSquare(a *mat.Dense, b *mat.VecDense) ([]float64, error) {
	var x mat.VecDense
	if err := x.SolveVec(a, b); err == nil && finite(x.RawVector().Data) {
		return x.RawVector().Data, nil
	}
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		return nil, fmt.Errorf("SVD of the %d x %d interpolation system failed", a.RawMatrix().Rows, a.RawMatrix().Cols)
	}
	svd.SolveVecTo(&x, b, svd.Rank(1e-12))
	if !finite(x.RawVector().Data) {
		return nil, fmt.Errorf("interpolation system has no finite solution")
	}
	return x.RawVector().Data, nil
}

func finite(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// Predict implements Model.
func (m *RBF) Predict(X [][]float64) []float64 {
	out := nanRows(len(X))
	if !m.fitted {
		return out
	}
	for i, row := range X {
		if len(row) != len(m.sc.min) {
			continue
		}
		z := m.sc.apply(row)
		s := m.tail[0]
		for k, v := range z {
			s += m.tail[1+k] * v
		}
		for j, c := range m.centers {
			r := math.Sqrt(sqDist(z, c))
			s += m.lambda[j] * r * r * r
		}
		out[i] = s*m.yStd + m.yMean
	}
	return out
}

// RBFEnsemble bags cubic RBF interpolants fitted on bootstrap resamples and
// predicts their mean, which smooths the exact interpolation on noisy data.
type RBFEnsemble struct {
	Models int    // ensemble size; zero means 20
	Seed   uint64 // seed of the bootstrap draws

	members []*RBF
}

// NewRBFEnsemble returns an unfitted ensemble of models RBFs (0 means 20).
func NewRBFEnsemble(models int, seed uint64) *RBFEnsemble {
	return &RBFEnsemble{Models: models, Seed: seed}
}

// Name implements Model.
func (m *RBFEnsemble) Name() string { return "rbf-ensemble" }

// Fit implements Model.
func (m *RBFEnsemble) Fit(X [][]float64, y []float64) error {
	m.members = nil
	if _, err := checkXY(X, y, 1); err != nil {
		return fmt.Errorf("rbf-ensemble: %w", err)
	}
	k := m.Models
	if k <= 0 {
		k = 20
	}
	rng := rand.New(rand.NewPCG(m.Seed, 0x7262662d656e73))
	n := len(X)
	members := make([]*RBF, 0, k)
	for b := 0; b < k; b++ {
		bx, by := make([][]float64, n), make([]float64, n)
		for i := range bx {
			j := rng.IntN(n)
			bx[i], by[i] = X[j], y[j]
		}
		r := NewRBF()
		if err := r.Fit(bx, by); err != nil {
			return fmt.Errorf("rbf-ensemble: member %d: %w", b, err)
		}
		members = append(members, r)
	}
	m.members = members
	return nil
}

// Predict implements Model.
func (m *RBFEnsemble) Predict(X [][]float64) []float64 {
	if len(m.members) == 0 {
		return nanRows(len(X))
	}
	out := make([]float64, len(X))
	for _, r := range m.members {
		for i, v := range r.Predict(X) {
			out[i] += v
		}
	}
	for i := range out {
		out[i] /= float64(len(m.members))
	}
	return out
}
