package supernet

import (
	"context"
	"fmt"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

// BenchmarkForward times the compiled eval forward for the subnets bench/torch_forward.py
// times in PyTorch: smallest (k3 e3 d2), middle (k5 e4 d3), largest (k7 e6 d4).
func BenchmarkForward(b *testing.B) {
	spec := OFAMobileNetV3(1.0, 102)
	sn, err := Random(spec, 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range []struct {
		name    string
		k, e, d int
	}{{"smallest", 3, 3, 2}, {"middle", 5, 4, 3}, {"largest", 7, 6, 4}} {
		for _, r := range []int{128, 160, 224} {
			for _, n := range []int{1, 16} {
				b.Run(fmt.Sprintf("%s/r%d/b%d", a.name, r, n), func(b *testing.B) {
					sub, err := sn.Extract(spec.Uniform(a.k, a.e, a.d, r))
					if err != nil {
						b.Fatal(err)
					}
					net := sub.Compile()
					x := make([]float32, n*3*r*r)
					for i := range x {
						x[i] = float32(i%255)/128 - 1
					}
					ctx := context.Background()
					if _, err := net.Forward(ctx, x, n, r, r); err != nil {
						b.Fatal(err)
					}
					b.ResetTimer()
					for range b.N {
						if _, err := net.Forward(ctx, x, n, r, r); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
				})
			}
		}
	}
}

// BenchmarkLoadOFA loads OFA's w1.0 checkpoint (torch zip format) into a Supernet.
func BenchmarkLoadOFA(b *testing.B) {
	path := testutil.Shared(b, "fixtures/ofa-parity/ofa_mbv3_d234_e346_k357_w1.0_seed0.pth")
	for range b.N {
		if _, err := Load(path, LoadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadNative loads the same supernet from natgw's native format.
func BenchmarkLoadNative(b *testing.B) {
	sn, err := Load(testutil.Shared(b, "fixtures/ofa-parity/ofa_mbv3_d234_e346_k357_w1.0_seed0.pth"), LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	path := b.TempDir() + "/ofa.safetensors"
	if err := sn.Save(path, SaveOptions{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := Load(path, LoadOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
