package surrogate

import "math"

// KendallTau returns Kendall's tau-b rank correlation of a and b:
// (concordant - discordant) / sqrt((n0 - ties_a) (n0 - ties_b)) over all
// n0 = n(n-1)/2 pairs, where pairs tied in a (or b) count in ties_a (ties_b)
// and pairs tied in either are neither concordant nor discordant. It returns 0
// when tau-b is undefined: fewer than two pairs, a or b entirely tied, or
// slices of different lengths. NaN entries are treated as ties with everything.
func KendallTau(a, b []float64) float64 {
	n := len(a)
	if n != len(b) || n < 2 {
		return 0
	}
	var conc, disc, tieA, tieB float64
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			da, db := sign(a[i]-a[j]), sign(b[i]-b[j])
			if da == 0 {
				tieA++
			}
			if db == 0 {
				tieB++
			}
			switch p := da * db; {
			case p > 0:
				conc++
			case p < 0:
				disc++
			}
		}
	}
	n0 := float64(n) * float64(n-1) / 2
	den := math.Sqrt((n0 - tieA) * (n0 - tieB))
	if den == 0 {
		return 0
	}
	return (conc - disc) / den
}

func sign(x float64) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0 // zero and NaN
}
