package surrogate

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// Kernel selects the Gaussian-process covariance.
type Kernel int

const (
	// Matern52 is the Matérn 5/2 kernel, twice differentiable.
	Matern52 Kernel = iota
	// SquaredExp is the squared-exponential (RBF) kernel, infinitely smooth.
	SquaredExp
)

// GP is Gaussian-process regression with an isotropic kernel on features
// scaled to [0, 1] and standardised targets. The length scale and the noise
// ratio are chosen on a log grid, followed by a golden-section refinement of
// the length scale, to maximise the log marginal likelihood; the signal
// variance has a closed-form optimum and is profiled out.
type GP struct {
	Kernel Kernel

	sc          scaler
	z           [][]float64
	alpha       []float64
	ell, sigma2 float64
	noise       float64
	yMean, yStd float64
	lml         float64
	fitted      bool
}

// NewGP returns an unfitted Gaussian process with the given kernel.
func NewGP(k Kernel) *GP { return &GP{Kernel: k} }

// Name implements Model.
func (m *GP) Name() string {
	if m.Kernel == SquaredExp {
		return "gp-se"
	}
	return "gp-matern52"
}

// Hyper returns the fitted length scale (in scaled feature units), signal
// variance and noise ratio (noise variance / signal variance) and the log
// marginal likelihood of the standardised targets.
func (m *GP) Hyper() (lengthScale, signalVar, noiseRatio, logML float64) {
	return m.ell, m.sigma2, m.noise, m.lml
}

func (m *GP) corr(r2, ell float64) float64 {
	if m.Kernel == SquaredExp {
		return math.Exp(-0.5 * r2 / (ell * ell))
	}
	r := math.Sqrt(5*r2) / ell
	return (1 + r + r*r/3) * math.Exp(-r)
}

// Fit implements Model.
func (m *GP) Fit(X [][]float64, y []float64) error {
	m.fitted = false
	if _, err := checkXY(X, y, 1); err != nil {
		return fmt.Errorf("gp: %w", err)
	}
	if m.Kernel != Matern52 && m.Kernel != SquaredExp {
		return fmt.Errorf("gp: unknown kernel %d", m.Kernel)
	}
	m.sc = newScaler(X, 1, 0)
	z := m.sc.applyAll(X)
	m.yMean, m.yStd = standardize(y)
	n, d := len(z), len(z[0])
	ys := mat.NewVecDense(n, nil)
	for i, v := range y {
		ys.SetVec(i, (v-m.yMean)/m.yStd)
	}
	d2 := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j < i; j++ {
			r2 := sqDist(z[i], z[j])
			d2[i*n+j], d2[j*n+i] = r2, r2
		}
	}
	type fit struct {
		lml, ell, noise, sigma2 float64
		alpha                   []float64
	}
	eval := func(ell, noise float64) (fit, bool) {
		k := mat.NewSymDense(n, nil)
		for i := 0; i < n; i++ {
			for j := 0; j <= i; j++ {
				c := m.corr(d2[i*n+j], ell)
				if i == j {
					c += noise
				}
				k.SetSym(i, j, c)
			}
		}
		var ch mat.Cholesky
		if !ch.Factorize(k) {
			return fit{}, false
		}
		var a mat.VecDense
		if err := ch.SolveVecTo(&a, ys); err != nil {
			return fit{}, false
		}
		quad := mat.Dot(ys, &a)
		if !(quad > 0) { // all-zero standardised targets: any scale fits, keep a unit variance
			quad = float64(n)
		}
		s2 := quad / float64(n)
		lml := -0.5*float64(n)*math.Log(s2) - 0.5*ch.LogDet() - 0.5*float64(n)*(1+math.Log(2*math.Pi))
		if math.IsNaN(lml) || math.IsInf(lml, 0) {
			return fit{}, false
		}
		return fit{lml: lml, ell: ell, noise: noise, sigma2: s2, alpha: a.RawVector().Data}, true
	}
	// Typical distances in the unit cube grow like sqrt(d), so the grid does too.
	base := math.Sqrt(float64(d))
	const gridN = 12
	lo, hi := math.Log(0.02*base), math.Log(3*base)
	// Noise ratios tried; the smallest doubles as jitter.
	noiseGrid := [...]float64{1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3}
	best := fit{lml: math.Inf(-1)}
	bestG := -1
	for g := 0; g < gridN; g++ {
		ell := math.Exp(lo + (hi-lo)*float64(g)/(gridN-1))
		for _, noise := range noiseGrid {
			if f, ok := eval(ell, noise); ok && f.lml > best.lml {
				best, bestG = f, g
			}
		}
	}
	if bestG < 0 {
		return fmt.Errorf("gp: kernel matrix not positive definite for any hyperparameter")
	}
	// Golden-section search on log length scale between the grid neighbours.
	step := (hi - lo) / (gridN - 1)
	a, b := math.Log(best.ell)-step, math.Log(best.ell)+step
	const phi = 0.6180339887498949
	noise := best.noise
	value := func(t float64) (fit, float64) {
		f, ok := eval(math.Exp(t), noise)
		if !ok {
			return f, math.Inf(-1)
		}
		return f, f.lml
	}
	c, e := b-phi*(b-a), a+phi*(b-a)
	fc, vc := value(c)
	fe, ve := value(e)
	for it := 0; it < 12; it++ {
		if vc > ve {
			b, e, fe, ve = e, c, fc, vc
			c = b - phi*(b-a)
			fc, vc = value(c)
		} else {
			a, c, fc, vc = c, e, fe, ve
			e = a + phi*(b-a)
			fe, ve = value(e)
		}
	}
	if vc > best.lml {
		best = fc
	}
	if ve > best.lml {
		best = fe
	}
	m.z, m.alpha = z, best.alpha
	m.ell, m.noise, m.sigma2, m.lml = best.ell, best.noise, best.sigma2, best.lml
	m.fitted = true
	return nil
}

// Predict implements Model (posterior mean).
func (m *GP) Predict(X [][]float64) []float64 {
	out := nanRows(len(X))
	if !m.fitted {
		return out
	}
	for i, row := range X {
		if len(row) != len(m.sc.min) {
			continue
		}
		q := m.sc.apply(row)
		s := 0.0
		for j, c := range m.z {
			s += m.corr(sqDist(q, c), m.ell) * m.alpha[j]
		}
		out[i] = s*m.yStd + m.yMean
	}
	return out
}
