package nsga2

import (
	"math"
	"sort"
)

// dominates reports whether a Pareto-dominates b (minimisation): no worse in
// every objective and better in at least one.
func dominates(a, b []float64) bool {
	better := false
	for i := range a {
		if a[i] > b[i] {
			return false
		}
		if a[i] < b[i] {
			better = true
		}
	}
	return better
}

// ConstrainedDominates applies Deb's constrained-domination rule: a feasible
// point beats an infeasible one, of two infeasible points the one with the
// smaller violation wins, and two feasible points compare by Pareto dominance.
func ConstrainedDominates(a []float64, cva float64, b []float64, cvb float64) bool {
	switch {
	case cva == 0 && cvb == 0:
		return dominates(a, b)
	case cva == 0:
		return true
	case cvb == 0:
		return false
	default:
		return cva < cvb
	}
}

// Fronts is the fast non-dominated sort of Deb et al.: it partitions the
// indices of objs into fronts under constrained domination, best first. A nil
// cv means all points are feasible. Indices within a front are ascending.
func Fronts(objs [][]float64, cv []float64) [][]int {
	n := len(objs)
	viol := func(i int) float64 {
		if cv == nil {
			return 0
		}
		return cv[i]
	}
	dominatedBy := make([][]int, n) // dominatedBy[i]: points that i dominates
	count := make([]int, n)         // number of points dominating i
	var first []int
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			switch {
			case ConstrainedDominates(objs[i], viol(i), objs[j], viol(j)):
				dominatedBy[i] = append(dominatedBy[i], j)
				count[j]++
			case ConstrainedDominates(objs[j], viol(j), objs[i], viol(i)):
				dominatedBy[j] = append(dominatedBy[j], i)
				count[i]++
			}
		}
	}
	for i := 0; i < n; i++ {
		if count[i] == 0 {
			first = append(first, i)
		}
	}
	var fronts [][]int
	for cur := first; len(cur) > 0; {
		fronts = append(fronts, cur)
		var next []int
		for _, i := range cur {
			for _, j := range dominatedBy[i] {
				count[j]--
				if count[j] == 0 {
					next = append(next, j)
				}
			}
		}
		sort.Ints(next)
		cur = next
	}
	return fronts
}

// Crowding returns the crowding distance of each point of one front: the sum
// over objectives of the normalised gap between its neighbours, +Inf for the
// extremes of any objective with a non-zero range. Fronts of up to two points
// are all +Inf.
func Crowding(objs [][]float64) []float64 {
	n := len(objs)
	d := make([]float64, n)
	if n == 0 {
		return d
	}
	if n <= 2 {
		for i := range d {
			d[i] = math.Inf(1)
		}
		return d
	}
	idx := make([]int, n)
	for m := range objs[0] {
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return objs[idx[a]][m] < objs[idx[b]][m] })
		lo, hi := objs[idx[0]][m], objs[idx[n-1]][m]
		if hi == lo {
			continue
		}
		d[idx[0]] = math.Inf(1)
		d[idx[n-1]] = math.Inf(1)
		for k := 1; k < n-1; k++ {
			d[idx[k]] += (objs[idx[k+1]][m] - objs[idx[k-1]][m]) / (hi - lo)
		}
	}
	return d
}

// rankAndCrowd sets Rank and Crowding of every individual and returns the fronts.
func rankAndCrowd(pop []Individual) [][]int {
	objs := make([][]float64, len(pop))
	cv := make([]float64, len(pop))
	for i := range pop {
		objs[i], cv[i] = pop[i].Objs, pop[i].CV
	}
	fronts := Fronts(objs, cv)
	for r, f := range fronts {
		fo := make([][]float64, len(f))
		for k, i := range f {
			fo[k] = objs[i]
		}
		cd := Crowding(fo)
		for k, i := range f {
			pop[i].Rank = r
			pop[i].Crowding = cd[k]
		}
	}
	return fronts
}

// survive keeps the best n of pop by front, then by crowding distance
// (elitist μ+λ survival) and returns them ordered by rank, then crowding.
func survive(pop []Individual, n int) []Individual {
	fronts := rankAndCrowd(pop)
	out := make([]Individual, 0, n)
	for _, f := range fronts {
		if len(out)+len(f) <= n {
			for _, i := range f {
				out = append(out, pop[i])
			}
			continue
		}
		last := append([]int(nil), f...)
		sort.SliceStable(last, func(a, b int) bool { return pop[last[a]].Crowding > pop[last[b]].Crowding })
		for _, i := range last[:n-len(out)] {
			out = append(out, pop[i])
		}
		break
	}
	sort.SliceStable(out, func(a, b int) bool { return better(out[a], out[b]) })
	return out
}

// better is the crowded-comparison order: lower rank, then larger crowding.
func better(a, b Individual) bool {
	if a.Rank != b.Rank {
		return a.Rank < b.Rank
	}
	return a.Crowding > b.Crowding
}
