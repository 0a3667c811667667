package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestApply(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, act := range []Act{ActNone, ActReLU, ActReLU6, ActHSwish, ActHSigmoid} {
		for _, n := range []int{0, 1, 7, 8, 9, 1000, 1<<16 + 3} {
			x := randSlice(r, n, 10)
			// Include the kinks exactly.
			for i, v := range []float32{-3, 0, 3, 6, -6} {
				if i < n {
					x[i] = v
				}
			}
			want := make([]float64, n)
			for i, v := range x {
				want[i] = refAct(act, float64(v))
			}
			Apply(act, x)
			compare(t, act.String(), x, want, nil)
		}
	}
}

func TestSgemm(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	for _, tc := range []struct{ m, n, k int }{{1, 1, 1}, {5, 7, 3}, {33, 17, 65}, {4, 100, 1}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				m, n, k := tc.m, tc.n, tc.k
				ar, ac := m, k
				if ta {
					ar, ac = k, m
				}
				br, bc := k, n
				if tb {
					br, bc = n, k
				}
				lda, ldb, ldc := ac+2, bc+1, n+3
				a, b := randSlice(r, ar*lda, 1), randSlice(r, br*ldb, 1)
				c := randSlice(r, m*ldc, 1)
				alpha, beta := float32(1.5), float32(-0.5)
				want := make([]float64, m*ldc)
				scale := make([]float64, m*ldc)
				for i := range want {
					want[i] = float64(c[i])
				}
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						var s, sa float64
						for p := 0; p < k; p++ {
							var av, bv float32
							if ta {
								av = a[p*lda+i]
							} else {
								av = a[i*lda+p]
							}
							if tb {
								bv = b[j*ldb+p]
							} else {
								bv = b[p*ldb+j]
							}
							s += float64(av) * float64(bv)
							sa += math.Abs(float64(av) * float64(bv))
						}
						want[i*ldc+j] = float64(alpha)*s + float64(beta)*float64(c[i*ldc+j])
						scale[i*ldc+j] = sa + math.Abs(float64(c[i*ldc+j]))
					}
				}
				Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
				compare(t, "c", c, want, scale)
			}
		}
	}
}

func TestElementwise(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	for _, sz := range []struct{ n, c, hw int }{{1, 1, 1}, {1, 3, 7}, {3, 5, 49}, {2, 16, 1023}, {4, 96, 1024}} {
		n, c, hw := sz.n, sz.c, sz.hw
		x := randSlice(r, n*c*hw, 3)

		y := make([]float32, n*c)
		GlobalAvgPool(n, c, hw, x, y)
		want, scale := make([]float64, n*c), make([]float64, n*c)
		for p := range want {
			for i := 0; i < hw; i++ {
				want[p] += float64(x[p*hw+i])
				scale[p] += math.Abs(float64(x[p*hw+i]))
			}
			want[p] /= float64(hw)
			scale[p] /= float64(hw)
		}
		compare(t, "GlobalAvgPool", y, want, scale)

		scl, sh := randSlice(r, c, 2), randSlice(r, c, 2)
		xa := append([]float32(nil), x...)
		ChannelAffine(n, c, hw, xa, scl, sh)
		wa := make([]float64, len(x))
		for i := range x {
			ch := i / hw % c
			wa[i] = float64(x[i])*float64(scl[ch]) + float64(sh[ch])
		}
		compare(t, "ChannelAffine", xa, wa, nil)
		// The fused pass is the two passes, bit for bit, for every activation.
		for _, act := range []Act{ActNone, ActReLU, ActReLU6, ActHSwish, ActHSigmoid} {
			two := append([]float32(nil), xa...)
			Apply(act, two)
			one := append([]float32(nil), x...)
			ChannelAffineAct(n, c, hw, one, scl, sh, act)
			if !slices.Equal(one, two) {
				t.Fatalf("ChannelAffineAct %v on %v differs from ChannelAffine then Apply", act, sz)
			}
		}

		s := randSlice(r, n*c, 2)
		xs := append([]float32(nil), x...)
		ChannelScale(n, c, hw, xs, s)
		ws := make([]float64, len(x))
		for i := range x {
			ws[i] = float64(x[i]) * float64(s[i/hw])
		}
		compare(t, "ChannelScale", xs, ws, nil)

		src := randSlice(r, len(x), 3)
		xd := append([]float32(nil), x...)
		Add(xd, src)
		wd := make([]float64, len(x))
		for i := range x {
			wd[i] = float64(x[i]) + float64(src[i])
		}
		compare(t, "Add", xd, wd, nil)
	}
}

func TestWorkersSetting(t *testing.T) {
	prev := SetWorkers(5)
	defer SetWorkers(prev)
	if got := Workers(); got != 5 {
		t.Errorf("Workers() = %d after SetWorkers(5)", got)
	}
	SetWorkers(0)
	if got := Workers(); got < 1 {
		t.Errorf("default Workers() = %d", got)
	}
}
