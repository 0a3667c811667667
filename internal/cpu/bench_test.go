package cpu

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
)

// benchConvs are the shapes compared with PyTorch in bench/cpu_torch.py.
func benchConvs() []struct {
	name string
	c    Conv
} {
	sym := func(n, c, h, k, f, s, p, g int) Conv {
		return Conv{N: n, C: c, H: h, W: h, K: k, KH: f, KW: f, StrideH: s, StrideW: s, PadTop: p, PadLeft: p, PadBottom: p, PadRight: p, Groups: g}
	}
	var out []struct {
		name string
		c    Conv
	}
	for _, n := range []int{1, 16} {
		for _, b := range []struct {
			name string
			c    Conv
		}{
			{"pw_96to24_64x64", sym(n, 96, 64, 24, 1, 1, 0, 1)},
			{"dw_k7s1_144c_32x32", sym(n, 144, 32, 144, 7, 1, 3, 144)},
			{"dw_k5s2_144c_56x56", sym(n, 144, 56, 144, 5, 2, 2, 144)},
			{"stem_3x3s2_3to16_224", sym(n, 3, 224, 16, 3, 2, 1, 1)},
		} {
			b.name = fmt.Sprintf("%s/b%d", b.name, n)
			b.c = sym(n, b.c.C, b.c.H, b.c.K, b.c.KH, b.c.StrideH, b.c.PadTop, b.c.Groups)
			out = append(out, b)
		}
	}
	return out
}

func benchReport(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// cpuSeconds is the process's user+system time; GFLOP/s per CPU-second stays comparable when
// other processes share the cores.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func benchCPU(b *testing.B, flops, cpu0 float64) {
	if d := cpuSeconds() - cpu0; d > 0 {
		b.ReportMetric(flops*float64(b.N)/d/1e9, "GFLOP/s-cpu")
	}
}

func BenchmarkConvForward(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, bc := range benchConvs() {
		c := bc.c
		x := randSlice(r, c.N*c.C*c.H*c.W, 1)
		w := randSlice(r, c.K*c.C/c.groups()*c.KH*c.KW, 1)
		bias := randSlice(r, c.K, 1)
		y := make([]float32, c.N*c.K*c.OutH()*c.OutW())
		scratch := make([]float32, c.ScratchSize())
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuSeconds()
			for b.Loop() {
				ConvForwardScratch(c, x, w, bias, ActNone, y, scratch)
			}
			benchReport(b, c.Flops())
			benchCPU(b, c.Flops(), cpu0)
		})
	}
}

func BenchmarkConvBackward(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, bc := range benchConvs() {
		c := bc.c
		x := randSlice(r, c.N*c.C*c.H*c.W, 1)
		w := randSlice(r, c.K*c.C/c.groups()*c.KH*c.KW, 1)
		dy := randSlice(r, c.N*c.K*c.OutH()*c.OutW(), 1)
		dx, dw := make([]float32, len(x)), make([]float32, len(w))
		b.Run("data/"+bc.name, func(b *testing.B) {
			for b.Loop() {
				ConvBackwardData(c, dy, w, dx)
			}
			benchReport(b, c.Flops())
		})
		b.Run("filter/"+bc.name, func(b *testing.B) {
			for b.Loop() {
				ConvBackwardFilter(c, x, dy, dw)
			}
			benchReport(b, c.Flops())
		})
	}
}

func BenchmarkElementwise(b *testing.B) {
	const n, c, hw = 16, 96, 64 * 64
	r := rand.New(rand.NewPCG(3, 3))
	x := randSlice(r, n*c*hw, 1)
	s := randSlice(r, n*c, 1)
	b.Run("hswish", func(b *testing.B) {
		for b.Loop() {
			Apply(ActHSwish, x)
		}
		b.SetBytes(int64(8 * len(x)))
	})
	b.Run("channel_affine", func(b *testing.B) {
		for b.Loop() {
			ChannelAffine(n, c, hw, x, s[:c], s[:c])
		}
		b.SetBytes(int64(8 * len(x)))
	})
}
