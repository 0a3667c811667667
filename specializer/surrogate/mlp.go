package surrogate

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// MLP is a fully connected ReLU network with one or two hidden layers trained
// by minibatch Adam on the squared error of standardised targets, with
// features scaled to [-1, 1]. A seeded random part of the data (ValFraction)
// is held out and training stops when its error has not improved for Patience
// epochs; the weights of the best epoch are kept.
type MLP struct {
	Hidden      []int   // hidden layer widths; default {64}
	Epochs      int     // maximum epochs; default 2000
	Patience    int     // early-stopping patience in epochs; default 100
	Batch       int     // minibatch size; default 32
	LR          float64 // Adam learning rate; default 1e-2
	WeightDecay float64 // L2 penalty on weights; default 1e-3
	ValFraction float64 // held-out share for early stopping; default 0.2 (none below 10 rows)
	Seed        uint64

	sc          scaler
	layers      []layer
	yMean, yStd float64
	fitted      bool
}

// layer is a dense layer: out = W in + b, W stored row-major out x in.
type layer struct {
	in, out int
	w, b    []float64
}

// NewMLP returns an unfitted MLP with default settings and the given seed.
func NewMLP(seed uint64) *MLP { return &MLP{Seed: seed} }

// Name implements Model.
func (m *MLP) Name() string { return "mlp" }

func (m *MLP) defaults() (MLP, error) {
	c := *m
	if len(c.Hidden) == 0 {
		c.Hidden = []int{64}
	}
	if len(c.Hidden) > 2 {
		return c, fmt.Errorf("%d hidden layers, at most 2 supported", len(c.Hidden))
	}
	for _, h := range c.Hidden {
		if h < 1 {
			return c, fmt.Errorf("hidden width %d", h)
		}
	}
	if c.Epochs <= 0 {
		c.Epochs = 2000
	}
	if c.Patience <= 0 {
		c.Patience = 100
	}
	if c.Batch <= 0 {
		c.Batch = 32
	}
	if c.LR <= 0 {
		c.LR = 1e-2
	}
	if c.WeightDecay < 0 {
		return c, fmt.Errorf("negative weight decay %v", c.WeightDecay)
	}
	if c.WeightDecay == 0 {
		c.WeightDecay = 1e-3
	}
	if c.ValFraction <= 0 {
		c.ValFraction = 0.2
	}
	if c.ValFraction >= 1 {
		return c, fmt.Errorf("validation fraction %v >= 1", c.ValFraction)
	}
	return c, nil
}

// Fit implements Model.
func (m *MLP) Fit(X [][]float64, y []float64) error {
	m.fitted = false
	d, err := checkXY(X, y, 1)
	if err != nil {
		return fmt.Errorf("mlp: %w", err)
	}
	cfg, err := m.defaults()
	if err != nil {
		return fmt.Errorf("mlp: %w", err)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6d6c702d696e6974))
	m.sc = newScaler(X, 2, -1)
	z := m.sc.applyAll(X)
	m.yMean, m.yStd = standardize(y)
	t := make([]float64, len(y))
	for i, v := range y {
		t[i] = (v - m.yMean) / m.yStd
	}

	perm := rng.Perm(len(z))
	nVal := 0
	if len(z) >= 10 {
		nVal = max(1, int(math.Round(cfg.ValFraction*float64(len(z)))))
	}
	val, train := perm[:nVal], perm[nVal:]

	widths := append(append([]int{d}, cfg.Hidden...), 1)
	layers := make([]layer, len(widths)-1)
	for l := range layers {
		in, out := widths[l], widths[l+1]
		ly := layer{in: in, out: out, w: make([]float64, in*out), b: make([]float64, out)}
		std := math.Sqrt(2 / float64(in)) // He initialisation for ReLU
		for i := range ly.w {
			ly.w[i] = rng.NormFloat64() * std
		}
		layers[l] = ly
	}
	tr := newTrainer(layers)
	valErr := func() float64 {
		s := 0.0
		for _, i := range val {
			e := forward(layers, z[i], nil)[0] - t[i]
			s += e * e
		}
		return s
	}
	best := cloneLayers(layers)
	bestErr, since := math.Inf(1), 0
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		rng.Shuffle(len(train), func(a, b int) { train[a], train[b] = train[b], train[a] })
		for s := 0; s < len(train); s += cfg.Batch {
			batch := train[s:min(s+cfg.Batch, len(train))]
			tr.zero()
			for _, i := range batch {
				tr.accumulate(z[i], t[i])
			}
			tr.step(float64(len(batch)), cfg.LR, cfg.WeightDecay)
		}
		if nVal == 0 {
			continue
		}
		if e := valErr(); e < bestErr-1e-12 {
			bestErr, since = e, 0
			best = cloneLayers(layers)
		} else if since++; since >= cfg.Patience {
			break
		}
	}
	if nVal == 0 {
		best = layers
	}
	for _, ly := range best {
		if !finite(ly.w) || !finite(ly.b) {
			return fmt.Errorf("mlp: training diverged")
		}
	}
	m.layers = best
	m.fitted = true
	return nil
}

func cloneLayers(ls []layer) []layer {
	out := make([]layer, len(ls))
	for i, l := range ls {
		out[i] = layer{in: l.in, out: l.out, w: append([]float64(nil), l.w...), b: append([]float64(nil), l.b...)}
	}
	return out
}

// forward runs the network; when acts is non-nil it receives each layer's
// output (after ReLU for hidden layers) for back-propagation.
func forward(ls []layer, x []float64, acts [][]float64) []float64 {
	in := x
	for l, ly := range ls {
		var out []float64
		if acts != nil {
			out = acts[l]
		} else {
			out = make([]float64, ly.out)
		}
		for o := 0; o < ly.out; o++ {
			s := ly.b[o]
			w := ly.w[o*ly.in : (o+1)*ly.in]
			for k, v := range in {
				s += w[k] * v
			}
			if l < len(ls)-1 && s < 0 {
				s = 0
			}
			out[o] = s
		}
		in = out
	}
	return in
}

// trainer holds gradients, activations and Adam moments for one network.
type trainer struct {
	ls           []layer
	gw, gb       [][]float64
	mw, vw       [][]float64
	mb, vb       [][]float64
	acts, deltas [][]float64
	t            int
}

func newTrainer(ls []layer) *trainer {
	tr := &trainer{ls: ls}
	for _, ly := range ls {
		tr.gw = append(tr.gw, make([]float64, len(ly.w)))
		tr.mw = append(tr.mw, make([]float64, len(ly.w)))
		tr.vw = append(tr.vw, make([]float64, len(ly.w)))
		tr.gb = append(tr.gb, make([]float64, ly.out))
		tr.mb = append(tr.mb, make([]float64, ly.out))
		tr.vb = append(tr.vb, make([]float64, ly.out))
		tr.acts = append(tr.acts, make([]float64, ly.out))
		tr.deltas = append(tr.deltas, make([]float64, ly.out))
	}
	return tr
}

func (tr *trainer) zero() {
	for l := range tr.ls {
		clear(tr.gw[l])
		clear(tr.gb[l])
	}
}

// accumulate adds the gradient of 1/2 (f(x) - target)^2.
func (tr *trainer) accumulate(x []float64, target float64) {
	out := forward(tr.ls, x, tr.acts)
	last := len(tr.ls) - 1
	tr.deltas[last][0] = out[0] - target
	for l := last; l >= 0; l-- {
		ly := tr.ls[l]
		in := x
		if l > 0 {
			in = tr.acts[l-1]
		}
		for o := 0; o < ly.out; o++ {
			dl := tr.deltas[l][o]
			tr.gb[l][o] += dl
			g := tr.gw[l][o*ly.in : (o+1)*ly.in]
			for k, v := range in {
				g[k] += dl * v
			}
		}
		if l == 0 {
			break
		}
		prev := tr.deltas[l-1]
		clear(prev)
		for o := 0; o < ly.out; o++ {
			dl := tr.deltas[l][o]
			w := ly.w[o*ly.in : (o+1)*ly.in]
			for k := range prev {
				prev[k] += w[k] * dl
			}
		}
		for k := range prev {
			if tr.acts[l-1][k] <= 0 { // ReLU derivative
				prev[k] = 0
			}
		}
	}
}

// step applies one Adam update with the averaged gradient plus L2 decay on weights.
func (tr *trainer) step(n, lr, decay float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	tr.t++
	c1 := 1 - math.Pow(b1, float64(tr.t))
	c2 := 1 - math.Pow(b2, float64(tr.t))
	upd := func(p, g, mm, vv []float64, wd float64) {
		for i := range p {
			gi := g[i]/n + wd*p[i]
			mm[i] = b1*mm[i] + (1-b1)*gi
			vv[i] = b2*vv[i] + (1-b2)*gi*gi
			p[i] -= lr * (mm[i] / c1) / (math.Sqrt(vv[i]/c2) + eps)
		}
	}
	for l, ly := range tr.ls {
		upd(ly.w, tr.gw[l], tr.mw[l], tr.vw[l], decay)
		upd(ly.b, tr.gb[l], tr.mb[l], tr.vb[l], 0)
	}
}

// Predict implements Model.
func (m *MLP) Predict(X [][]float64) []float64 {
	out := nanRows(len(X))
	if !m.fitted {
		return out
	}
	for i, row := range X {
		if len(row) != len(m.sc.min) {
			continue
		}
		out[i] = forward(m.layers, m.sc.apply(row), nil)[0]*m.yStd + m.yMean
	}
	return out
}
