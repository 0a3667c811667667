package cpu

import (
	"math/rand/v2"
	"testing"
)

// convCases covers the required combinations explicitly, plus seeded random geometries.
func convCases() []Conv {
	sym := func(n, c, h, w, k, f, s, p, g int) Conv {
		return Conv{N: n, C: c, H: h, W: w, K: k, KH: f, KW: f, StrideH: s, StrideW: s, PadTop: p, PadLeft: p, PadBottom: p, PadRight: p, Groups: g}
	}
	cs := []Conv{
		sym(1, 96, 16, 16, 24, 1, 1, 0, 1),     // pointwise: straight GEMM
		sym(3, 17, 9, 11, 5, 1, 1, 0, 1),       // pointwise, odd sizes, batch 3
		sym(1, 64, 32, 32, 40, 1, 1, 0, 1),     // pointwise, big enough to run on several goroutines
		sym(2, 37, 4, 4, 13, 1, 1, 0, 1),       // pointwise on a small map: direct kernel, odd tails
		sym(3, 160, 2, 2, 67, 1, 1, 0, 1),      // direct kernel, 4 pixels
		sym(1, 9, 3, 5, 33, 1, 1, 0, 1),        // direct kernel, 15 pixels
		sym(1, 960, 1, 1, 21, 1, 1, 0, 1),      // direct kernel, one pixel
		sym(1, 8, 7, 7, 4, 1, 2, 0, 1),         // 1x1 stride 2: im2col
		sym(1, 3, 35, 33, 16, 3, 2, 1, 1),      // stem-like
		sym(3, 5, 13, 12, 7, 3, 1, 1, 1),       // dense 3x3 s1
		sym(1, 4, 12, 12, 6, 5, 1, 2, 1),       // dense 5x5
		sym(3, 3, 64, 64, 16, 3, 2, 1, 1),      // stem, parallel pixel blocks
		sym(2, 8, 10, 10, 12, 3, 1, 1, 4),      // grouped, neither dense nor depthwise
		sym(1, 6, 9, 9, 6, 3, 1, 1, 6),         // depthwise 3x3 s1
		sym(3, 5, 11, 13, 5, 3, 2, 1, 5),       // depthwise 3x3 s2 odd
		sym(1, 7, 17, 15, 7, 5, 1, 2, 7),       // depthwise 5x5 s1
		sym(3, 4, 19, 20, 4, 5, 2, 2, 4),       // depthwise 5x5 s2
		sym(1, 3, 23, 9, 3, 7, 1, 3, 3),        // depthwise 7x7 s1
		sym(1, 5, 21, 22, 5, 7, 2, 3, 5),       // depthwise 7x7 s2
		sym(1, 144, 32, 32, 144, 7, 1, 3, 144), // depthwise, several goroutines
		sym(3, 4, 7, 7, 4, 3, 1, 1, 4),         // depthwise 7x7 map (row tail blocks)
		sym(1, 3, 3, 3, 3, 3, 1, 1, 3),         // depthwise tiny
		sym(1, 4, 12, 12, 4, 4, 3, 1, 4),       // depthwise generic kernel/stride
		// TensorFlow SAME on even inputs pads bottom/right more.
		{N: 1, C: 6, H: 16, W: 16, K: 6, KH: 5, KW: 5, StrideH: 2, StrideW: 2, PadTop: 1, PadLeft: 1, PadBottom: 2, PadRight: 2, Groups: 6},
		{N: 3, C: 4, H: 14, W: 15, K: 4, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 0, PadLeft: 0, PadBottom: 1, PadRight: 1, Groups: 4},
		{N: 1, C: 3, H: 16, W: 16, K: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadTop: 0, PadLeft: 0, PadBottom: 1, PadRight: 1, Groups: 1},
		{N: 2, C: 5, H: 15, W: 16, K: 5, KH: 7, KW: 7, StrideH: 1, StrideW: 1, PadTop: 2, PadLeft: 3, PadBottom: 4, PadRight: 3, Groups: 5},
		{N: 1, C: 4, H: 11, W: 10, K: 4, KH: 3, KW: 5, StrideH: 1, StrideW: 2, PadTop: 1, PadLeft: 2, PadBottom: 1, PadRight: 2, Groups: 4},
		{N: 1, C: 2, H: 6, W: 6, K: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadTop: 3, PadLeft: 3, PadBottom: 3, PadRight: 3, Groups: 1},
	}
	r := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 30; i++ {
		f := []int{1, 3, 5, 7}[r.IntN(4)]
		s := 1 + r.IntN(2)
		c := Conv{N: []int{1, 3}[r.IntN(2)], C: 1 + r.IntN(12), H: f + r.IntN(20), W: f + r.IntN(20), KH: f, KW: f, StrideH: s, StrideW: s}
		c.PadTop, c.PadLeft, c.PadBottom, c.PadRight = r.IntN(f/2+1), r.IntN(f/2+1), r.IntN(f/2+1), r.IntN(f/2+1)
		if r.IntN(2) == 0 {
			c.Groups, c.K = c.C, c.C
		} else {
			c.Groups, c.K = 1, 1+r.IntN(12)
		}
		cs = append(cs, c)
	}
	return cs
}

func TestConvForward(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	acts := []Act{ActNone, ActReLU, ActReLU6, ActHSwish, ActHSigmoid}
	for _, workers := range []int{1, 2, 3} {
		prev := SetWorkers(workers)
		for i, c := range convCases() {
			if err := c.Check(); err != nil {
				t.Fatalf("case %v: %v", c, err)
			}
			act := acts[i%len(acts)]
			fan := float64(c.C / c.groups() * c.KH * c.KW)
			x := randSlice(r, c.N*c.C*c.H*c.W, 4)
			w := randSlice(r, c.K*c.C/c.groups()*c.KH*c.KW, 2/fan)
			var bias []float32
			if i%2 == 0 {
				bias = randSlice(r, c.K, 1)
			}
			want, scale := refConv(c, x, w, bias, act)
			t.Run(c.String()+"_"+act.String(), func(t *testing.T) {
				y := randSlice(r, len(want), 100) // garbage that must be overwritten
				ConvForward(c, x, w, bias, act, y)
				compare(t, "y", y, want, scale)
				y2 := make([]float32, len(want))
				ConvForwardScratch(c, x, w, bias, act, y2, make([]float32, c.ScratchSize()))
				compare(t, "y(scratch)", y2, want, scale)
			})
		}
		SetWorkers(prev)
	}
}

func TestConvBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, workers := range []int{1, 2} {
		prev := SetWorkers(workers)
		for _, c := range convCases() {
			x := randSlice(r, c.N*c.C*c.H*c.W, 1)
			w := randSlice(r, c.K*c.C/c.groups()*c.KH*c.KW, 1)
			dy := randSlice(r, c.N*c.K*c.OutH()*c.OutW(), 1)
			wdx, dxs, wdw, dws := refConvBackward(c, x, w, dy)
			t.Run(c.String(), func(t *testing.T) {
				dx := randSlice(r, len(x), 100)
				ConvBackwardData(c, dy, w, dx)
				compare(t, "dx", dx, wdx, dxs)
				dw := randSlice(r, len(w), 100)
				ConvBackwardFilter(c, x, dy, dw)
				compare(t, "dw", dw, wdw, dws)
			})
		}
		SetWorkers(prev)
	}
}

// TestConvAdjoint checks the backward passes against the forward one through the identities
// <dy, conv(x)> = <ConvBackwardData(dy), x> = <ConvBackwardFilter(x, dy), w>, which hold for
// the linear map without bias or activation.
func TestConvAdjoint(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range convCases() {
		t.Run(c.String(), func(t *testing.T) {
			x := randSlice(r, c.N*c.C*c.H*c.W, 1)
			w := randSlice(r, c.K*c.C/c.groups()*c.KH*c.KW, 1)
			dy := randSlice(r, c.N*c.K*c.OutH()*c.OutW(), 1)
			y := make([]float32, len(dy))
			ConvForward(c, x, w, nil, ActNone, y)
			dx := make([]float32, len(x))
			ConvBackwardData(c, dy, w, dx)
			dw := make([]float32, len(w))
			ConvBackwardFilter(c, x, dy, dw)
			dot := func(a, b []float32) (s, m float64) {
				for i := range a {
					s += float64(a[i]) * float64(b[i])
					m += abs64(float64(a[i]) * float64(b[i]))
				}
				return s, m
			}
			lhs, scale := dot(dy, y)
			for _, p := range []struct {
				name string
				a, b []float32
			}{{"dx.x", dx, x}, {"dw.w", dw, w}} {
				rhs, _ := dot(p.a, p.b)
				if d := abs64(lhs - rhs); d > 1e-5*scale+1e-5 {
					t.Errorf("<dy,y> = %g but <%s> = %g (scale %g)", lhs, p.name, rhs, scale)
				}
			}
		})
	}
}

func abs64(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestConvCheck(t *testing.T) {
	ok := Conv{N: 1, C: 4, H: 8, W: 8, K: 4, KH: 3, KW: 3, StrideH: 1, StrideW: 1, Groups: 4}
	for _, tc := range []struct {
		name string
		mod  func(*Conv)
		ok   bool
	}{
		{"valid", func(*Conv) {}, true},
		{"groups0 means dense", func(c *Conv) { c.Groups = 0 }, true},
		{"zero batch", func(c *Conv) { c.N = 0 }, false},
		{"zero stride", func(c *Conv) { c.StrideW = 0 }, false},
		{"negative pad", func(c *Conv) { c.PadLeft = -1 }, false},
		{"groups not dividing C", func(c *Conv) { c.Groups = 3 }, false},
		{"groups not dividing K", func(c *Conv) { c.Groups = 2; c.K = 5 }, false},
		{"kernel larger than input", func(c *Conv) { c.KH = 9; c.KW = 9; c.Groups = 1 }, false},
		{"negative groups", func(c *Conv) { c.Groups = -4 }, false},
	} {
		c := ok
		tc.mod(&c)
		if err := c.Check(); (err == nil) != tc.ok {
			t.Errorf("%s: Check() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestConvPanicsOnShortSlices(t *testing.T) {
	c := Conv{N: 1, C: 2, H: 4, W: 4, K: 2, KH: 1, KW: 1, StrideH: 1, StrideW: 1, Groups: 1}
	defer func() {
		if recover() == nil {
			t.Error("ConvForward with a short y did not panic")
		}
	}()
	ConvForward(c, make([]float32, 32), make([]float32, 4), nil, ActNone, make([]float32, 31))
}
