package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Float64 reference implementations that the kernels are checked against.

func refAct(a Act, v float64) float64 {
	r6 := func(t float64) float64 { return math.Min(math.Max(t, 0), 6) }
	switch a {
	case ActReLU:
		return math.Max(v, 0)
	case ActReLU6:
		return r6(v)
	case ActHSwish:
		return v * r6(v+3) / 6
	case ActHSigmoid:
		return r6(v+3) / 6
	}
	return v
}

// refConv returns act(conv(x,w)+bias) and, per output, the sum of |terms| (the scale of the
// rounding error a float32 sum may make).
func refConv(c Conv, x, w, bias []float32, act Act) (out, scale []float64) {
	oh, ow := c.OutH(), c.OutW()
	g := c.groups()
	cg, kg := c.C/g, c.K/g
	out = make([]float64, c.N*c.K*oh*ow)
	scale = make([]float64, len(out))
	for n := 0; n < c.N; n++ {
		for k := 0; k < c.K; k++ {
			gi := k / kg
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					var s, a float64
					if bias != nil {
						s, a = float64(bias[k]), math.Abs(float64(bias[k]))
					}
					for ci := 0; ci < cg; ci++ {
						ch := gi*cg + ci
						for kh := 0; kh < c.KH; kh++ {
							ih := y*c.StrideH - c.PadTop + kh
							if ih < 0 || ih >= c.H {
								continue
							}
							for kw := 0; kw < c.KW; kw++ {
								iw := xo*c.StrideW - c.PadLeft + kw
								if iw < 0 || iw >= c.W {
									continue
								}
								t := float64(x[((n*c.C+ch)*c.H+ih)*c.W+iw]) * float64(w[((k*cg+ci)*c.KH+kh)*c.KW+kw])
								s += t
								a += math.Abs(t)
							}
						}
					}
					i := ((n*c.K+k)*oh+y)*ow + xo
					out[i] = refAct(act, s)
					scale[i] = a
				}
			}
		}
	}
	return out, scale
}

// refConvBackward returns dx and dw of <dy, conv(x, w)> and their |term| scales.
func refConvBackward(c Conv, x, w, dy []float32) (dx, dxs, dw, dws []float64) {
	oh, ow := c.OutH(), c.OutW()
	g := c.groups()
	cg, kg := c.C/g, c.K/g
	dx, dxs = make([]float64, len(x[:c.N*c.C*c.H*c.W])), make([]float64, c.N*c.C*c.H*c.W)
	dw, dws = make([]float64, c.K*cg*c.KH*c.KW), make([]float64, c.K*cg*c.KH*c.KW)
	for n := 0; n < c.N; n++ {
		for k := 0; k < c.K; k++ {
			gi := k / kg
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					d := float64(dy[((n*c.K+k)*oh+y)*ow+xo])
					for ci := 0; ci < cg; ci++ {
						ch := gi*cg + ci
						for kh := 0; kh < c.KH; kh++ {
							ih := y*c.StrideH - c.PadTop + kh
							if ih < 0 || ih >= c.H {
								continue
							}
							for kw := 0; kw < c.KW; kw++ {
								iw := xo*c.StrideW - c.PadLeft + kw
								if iw < 0 || iw >= c.W {
									continue
								}
								xi := ((n*c.C+ch)*c.H+ih)*c.W + iw
								wi := ((k*cg+ci)*c.KH+kh)*c.KW + kw
								dx[xi] += d * float64(w[wi])
								dxs[xi] += math.Abs(d * float64(w[wi]))
								dw[wi] += d * float64(x[xi])
								dws[wi] += math.Abs(d * float64(x[xi]))
							}
						}
					}
				}
			}
		}
	}
	return dx, dxs, dw, dws
}

func randSlice(r *rand.Rand, n int, amp float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32((2*r.Float64() - 1) * amp)
	}
	return s
}

// compare fails t when |got-want| > 1e-4*|want| + 2e-6*scale + 1e-7 anywhere: relative to the
// value, plus the rounding a float32 sum of terms of total size scale may make.
func compare(t *testing.T, what string, got []float32, want, scale []float64) {
	t.Helper()
	bad := 0
	for i := range want {
		s := 0.0
		if scale != nil {
			s = scale[i]
		}
		tol := 1e-4*math.Abs(want[i]) + 2e-6*s + 1e-7
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol) {
			if bad < 5 {
				t.Errorf("%s[%d] = %g, want %g (diff %.3g, tol %.3g)", what, i, got[i], want[i], d, tol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance", what, bad, len(want))
	}
}

func (c Conv) String() string {
	return fmt.Sprintf("n%d_c%d_%dx%d_k%d_f%dx%d_s%dx%d_p%d.%d.%d.%d_g%d", c.N, c.C, c.H, c.W, c.K, c.KH, c.KW,
		c.StrideH, c.StrideW, c.PadTop, c.PadLeft, c.PadBottom, c.PadRight, c.Groups)
}
