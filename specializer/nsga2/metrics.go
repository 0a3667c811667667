package nsga2

import (
	"math"
	"sort"
)

// NonDominated returns the ascending indices of the points no other point
// Pareto-dominates (minimisation). Equal points do not dominate each other,
// so duplicates on the front are all kept.
func NonDominated(points [][]float64) []int {
	var out []int
	for i, p := range points {
		dominated := false
		for j, q := range points {
			if j != i && dominates(q, p) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, i)
		}
	}
	return out
}

// Hypervolume2D is the exact area dominated by points and bounded by ref
// (both objectives minimised). Only the first two coordinates are used; points
// that do not strictly improve on ref in both coordinates, or have fewer than
// two coordinates, add nothing.
func Hypervolume2D(points [][]float64, ref []float64) float64 {
	if len(ref) < 2 {
		return 0
	}
	var ps [][2]float64
	for _, p := range points {
		if len(p) >= 2 && p[0] < ref[0] && p[1] < ref[1] {
			ps = append(ps, [2]float64{p[0], p[1]})
		}
	}
	sort.Slice(ps, func(a, b int) bool {
		if ps[a][0] != ps[b][0] {
			return ps[a][0] < ps[b][0]
		}
		return ps[a][1] < ps[b][1]
	})
	hv, top := 0.0, ref[1]
	for _, p := range ps { // sweep along f1; each point adds the slab below the previous best f2
		if p[1] < top {
			hv += (ref[0] - p[0]) * (top - p[1])
			top = p[1]
		}
	}
	return hv
}

// IGD is the inverted generational distance: the mean, over the reference
// points, of the Euclidean distance to the nearest point of front. It is +Inf
// for an empty front and 0 for an empty reference set.
func IGD(front, reference [][]float64) float64 {
	if len(reference) == 0 {
		return 0
	}
	if len(front) == 0 {
		return math.Inf(1)
	}
	sum := 0.0
	for _, r := range reference {
		best := math.Inf(1)
		for _, f := range front {
			d := 0.0
			for m := range r {
				diff := r[m] - f[m]
				d += diff * diff
			}
			best = math.Min(best, d)
		}
		sum += math.Sqrt(best)
	}
	return sum / float64(len(reference))
}

// PickSpread chooses k indices of front spread evenly along it, as used to
// pick which predicted-optimal candidates to evaluate for real: points are
// ordered by the first objective, both objectives are normalised to [0, 1],
// and for k targets at uniform arc length along the resulting polyline (both
// extremes included) the nearest not yet chosen point by arc length is taken.
// Only the first two objectives are used. With k >= len(front) all indices are
// returned; the result is in front order by the first objective.
func PickSpread(front [][]float64, k int) []int {
	n := len(front)
	if k <= 0 || n == 0 {
		return nil
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		pa, pb := front[order[a]], front[order[b]]
		if pa[0] != pb[0] {
			return pa[0] < pb[0]
		}
		return pa[1] < pb[1]
	})
	if k >= n {
		return order
	}
	dims := min(2, len(front[0]))
	lo, hi := make([]float64, dims), make([]float64, dims)
	for m := 0; m < dims; m++ {
		lo[m], hi[m] = math.Inf(1), math.Inf(-1)
		for _, p := range front {
			lo[m], hi[m] = math.Min(lo[m], p[m]), math.Max(hi[m], p[m])
		}
	}
	arc := make([]float64, n) // cumulative normalised arc length along order
	for i := 1; i < n; i++ {
		d := 0.0
		for m := 0; m < dims; m++ {
			if hi[m] > lo[m] {
				diff := (front[order[i]][m] - front[order[i-1]][m]) / (hi[m] - lo[m])
				d += diff * diff
			}
		}
		arc[i] = arc[i-1] + math.Sqrt(d)
	}
	total := arc[n-1]
	taken := make([]bool, n)
	var picked []int
	for t := 0; t < k; t++ {
		target := 0.0
		if k > 1 {
			target = total * float64(t) / float64(k-1)
		}
		best, bestD := -1, math.Inf(1)
		for i := 0; i < n; i++ {
			if d := math.Abs(arc[i] - target); !taken[i] && d < bestD {
				best, bestD = i, d
			}
		}
		taken[best] = true
		picked = append(picked, best)
	}
	sort.Ints(picked)
	out := make([]int, len(picked))
	for i, p := range picked {
		out[i] = order[p]
	}
	return out
}
