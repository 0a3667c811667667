package nsga2

import (
	"math"
	"math/rand/v2"
)

// randomGenome draws each gene uniformly within its bounds.
func randomGenome(rng *rand.Rand, vars []Var) []float64 {
	g := make([]float64, len(vars))
	for i, v := range vars {
		if v.Integer {
			g[i] = v.Lo + float64(rng.IntN(int(v.Hi-v.Lo)+1))
		} else {
			g[i] = v.Lo + rng.Float64()*(v.Hi-v.Lo)
		}
	}
	return g
}

// snap clips every gene to its bounds and rounds integer genes.
func snap(g []float64, vars []Var) {
	for i, v := range vars {
		x := g[i]
		if math.IsNaN(x) {
			x = v.Lo
		}
		if v.Integer {
			x = math.Round(x)
		}
		g[i] = math.Min(math.Max(x, v.Lo), v.Hi)
	}
}

// inBounds reports whether g is a valid point of the space.
func inBounds(g []float64, vars []Var) bool {
	if len(g) != len(vars) {
		return false
	}
	for i, v := range vars {
		x := g[i]
		if !(x >= v.Lo && x <= v.Hi) || (v.Integer && x != math.Trunc(x)) {
			return false
		}
	}
	return true
}

// crossover recombines copies of two parents in place: SBX on real genes and
// uniform or two-point exchange on integer genes.
func crossover(rng *rand.Rand, c1, c2 []float64, vars []Var, cfg *Config) {
	var ints []int
	for i, v := range vars {
		if v.Integer {
			ints = append(ints, i)
			continue
		}
		if rng.Float64() < 0.5 { // each real gene is recombined with probability 1/2, as in Deb's SBX
			c1[i], c2[i] = sbx(rng, c1[i], c2[i], v.Lo, v.Hi, cfg.EtaC)
		}
	}
	if len(ints) == 0 {
		return
	}
	switch cfg.IntCrossover {
	case TwoPointCrossover:
		a, b := rng.IntN(len(ints)+1), rng.IntN(len(ints)+1)
		if a > b {
			a, b = b, a
		}
		for _, i := range ints[a:b] {
			c1[i], c2[i] = c2[i], c1[i]
		}
	default:
		for _, i := range ints {
			if rng.IntN(2) == 0 {
				c1[i], c2[i] = c2[i], c1[i]
			}
		}
	}
}

// sbx is bounded simulated binary crossover of one real gene (Deb and Agrawal 1995).
func sbx(rng *rand.Rand, x1, x2, lo, hi, eta float64) (float64, float64) {
	if math.Abs(x1-x2) < 1e-14 || hi <= lo {
		return x1, x2
	}
	y1, y2 := math.Min(x1, x2), math.Max(x1, x2)
	u := rng.Float64()
	betaq := func(beta float64) float64 {
		alpha := 2 - math.Pow(beta, -(eta+1))
		if u <= 1/alpha {
			return math.Pow(u*alpha, 1/(eta+1))
		}
		return math.Pow(1/(2-u*alpha), 1/(eta+1))
	}
	c1 := 0.5 * ((y1 + y2) - betaq(1+2*(y1-lo)/(y2-y1))*(y2-y1))
	c2 := 0.5 * ((y1 + y2) + betaq(1+2*(hi-y2)/(y2-y1))*(y2-y1))
	c1 = math.Min(math.Max(c1, lo), hi)
	c2 = math.Min(math.Max(c2, lo), hi)
	if rng.IntN(2) == 0 {
		c1, c2 = c2, c1
	}
	return c1, c2
}

// mutate applies, gene by gene with probability cfg.MutationProb, bounded
// polynomial mutation to real genes and a reset to a different value to integer genes.
func mutate(rng *rand.Rand, g []float64, vars []Var, cfg *Config) {
	for i, v := range vars {
		if rng.Float64() >= cfg.MutationProb || v.Hi == v.Lo {
			continue
		}
		if v.Integer {
			k := int(v.Hi - v.Lo) // number of other values
			r := v.Lo + float64(rng.IntN(k))
			if r >= g[i] {
				r++ // skip the current value so a mutation always changes the gene
			}
			g[i] = r
			continue
		}
		g[i] = polyMutate(rng, g[i], v.Lo, v.Hi, cfg.EtaM)
	}
}

// polyMutate is Deb's bounded polynomial mutation of one real gene.
func polyMutate(rng *rand.Rand, y, lo, hi, eta float64) float64 {
	d1, d2 := (y-lo)/(hi-lo), (hi-y)/(hi-lo)
	u := rng.Float64()
	p := 1 / (eta + 1)
	var dq float64
	if u < 0.5 {
		val := 2*u + (1-2*u)*math.Pow(1-d1, eta+1)
		dq = math.Pow(val, p) - 1
	} else {
		val := 2*(1-u) + 2*(u-0.5)*math.Pow(1-d2, eta+1)
		dq = 1 - math.Pow(val, p)
	}
	return math.Min(math.Max(y+dq*(hi-lo), lo), hi)
}
