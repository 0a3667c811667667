package surrogate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Forest is a random forest of CART regression trees (Breiman 2001): each
// tree is grown on a bootstrap resample, every split considers a random
// subset of the features and minimises the summed squared error, and the
// forest predicts the mean of its trees. Splits are axis-aligned, which suits
// integer encodings whose effect changes in steps.
type Forest struct {
	Trees       int     // number of trees; default 100
	MaxFeatures float64 // share of features tried per split; default 1/3 (at least one)
	MinLeaf     int     // minimum rows per leaf; default 2
	MaxDepth    int     // depth limit; 0 means unlimited
	Seed        uint64

	d     int
	trees []tree
}

// tree is stored flat: node i splits on feat[i] at thresh[i] (go left when
// x <= thresh) with children left[i], right[i]; leaves have feat -1 and value.
type tree struct {
	feat        []int
	thresh, val []float64
	left, right []int
}

// NewForest returns an unfitted random forest with default settings and the given seed.
func NewForest(seed uint64) *Forest { return &Forest{Seed: seed} }

// Name implements Model.
func (m *Forest) Name() string { return "random-forest" }

// Fit implements Model.
func (m *Forest) Fit(X [][]float64, y []float64) error {
	m.trees = nil
	d, err := checkXY(X, y, 1)
	if err != nil {
		return fmt.Errorf("random-forest: %w", err)
	}
	nt, minLeaf, frac := m.Trees, m.MinLeaf, m.MaxFeatures
	if nt <= 0 {
		nt = 100
	}
	if minLeaf <= 0 {
		minLeaf = 2
	}
	if frac <= 0 {
		frac = 1.0 / 3
	}
	if frac > 1 {
		return fmt.Errorf("random-forest: MaxFeatures %v > 1", frac)
	}
	mtry := max(1, int(math.Ceil(frac*float64(d))))
	rng := rand.New(rand.NewPCG(m.Seed, 0x72662d74726565))
	n := len(X)
	g := grower{X: X, y: y, rng: rng, mtry: mtry, minLeaf: minLeaf, maxDepth: m.MaxDepth, feats: make([]int, d)}
	trees := make([]tree, nt)
	for t := range trees {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		g.t = tree{}
		g.grow(idx, 0)
		trees[t] = g.t
	}
	m.d, m.trees = d, trees
	return nil
}

type grower struct {
	X        [][]float64
	y        []float64
	rng      *rand.Rand
	mtry     int
	minLeaf  int
	maxDepth int
	feats    []int
	t        tree
}

func (g *grower) leaf(idx []int) int {
	s := 0.0
	for _, i := range idx {
		s += g.y[i]
	}
	return g.node(-1, 0, s/float64(len(idx)))
}

func (g *grower) node(feat int, thresh, val float64) int {
	g.t.feat = append(g.t.feat, feat)
	g.t.thresh = append(g.t.thresh, thresh)
	g.t.val = append(g.t.val, val)
	g.t.left = append(g.t.left, -1)
	g.t.right = append(g.t.right, -1)
	return len(g.t.feat) - 1
}

// grow builds the subtree for the rows idx and returns its node index.
func (g *grower) grow(idx []int, depth int) int {
	n := len(idx)
	if n < 2*g.minLeaf || (g.maxDepth > 0 && depth >= g.maxDepth) {
		return g.leaf(idx)
	}
	sum, sumSq := 0.0, 0.0
	for _, i := range idx {
		sum += g.y[i]
		sumSq += g.y[i] * g.y[i]
	}
	parentSSE := sumSq - sum*sum/float64(n)
	if parentSSE <= 1e-12*math.Max(1, sumSq) {
		return g.leaf(idx)
	}
	for i := range g.feats {
		g.feats[i] = i
	}
	bestGain, bestFeat, bestThresh := 1e-12*math.Max(1, parentSSE), -1, 0.0
	order := make([]int, n)
	// Partial Fisher-Yates: the first mtry entries are a random feature subset.
	// As in common implementations, keep drawing past mtry while no valid split is found.
	for k := 0; k < len(g.feats); k++ {
		if k >= g.mtry && bestFeat >= 0 {
			break
		}
		r := k + g.rng.IntN(len(g.feats)-k)
		g.feats[k], g.feats[r] = g.feats[r], g.feats[k]
		f := g.feats[k]
		copy(order, idx)
		sort.SliceStable(order, func(a, b int) bool { return g.X[order[a]][f] < g.X[order[b]][f] })
		ls := 0.0
		for p := 0; p < n-1; p++ {
			ls += g.y[order[p]]
			nl := p + 1
			if nl < g.minLeaf || n-nl < g.minLeaf {
				continue
			}
			v, next := g.X[order[p]][f], g.X[order[p+1]][f]
			if v == next {
				continue
			}
			rs := sum - ls
			// SSE reduction = ls^2/nl + rs^2/nr - sum^2/n.
			gain := ls*ls/float64(nl) + rs*rs/float64(n-nl) - sum*sum/float64(n)
			if gain > bestGain {
				bestGain, bestFeat, bestThresh = gain, f, v+(next-v)/2
			}
		}
	}
	if bestFeat < 0 {
		return g.leaf(idx)
	}
	var l, r []int
	for _, i := range idx {
		if g.X[i][bestFeat] <= bestThresh {
			l = append(l, i)
		} else {
			r = append(r, i)
		}
	}
	if len(l) == 0 || len(r) == 0 { // guards a midpoint that rounded onto a neighbour
		return g.leaf(idx)
	}
	me := g.node(bestFeat, bestThresh, 0)
	li := g.grow(l, depth+1)
	ri := g.grow(r, depth+1)
	g.t.left[me], g.t.right[me] = li, ri
	return me
}

// Predict implements Model.
func (m *Forest) Predict(X [][]float64) []float64 {
	out := nanRows(len(X))
	if len(m.trees) == 0 {
		return out
	}
	for i, row := range X {
		if len(row) != m.d {
			continue
		}
		s := 0.0
		for _, t := range m.trees {
			k := 0
			for t.feat[k] >= 0 {
				if row[t.feat[k]] <= t.thresh[k] {
					k = t.left[k]
				} else {
					k = t.right[k]
				}
			}
			s += t.val[k]
		}
		out[i] = s / float64(len(m.trees))
	}
	return out
}
