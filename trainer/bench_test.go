package trainer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/natgw/natgw/supernet"
)

// BenchmarkSandwichStep times one training step of the OFA MobileNetV3 supernet (width
// 1.0, 102 classes) with the sandwich rule over 4 subnets (largest, smallest, 2 random),
// batch 32, and reports images/s (batch images per second of step time), the number
// bench/torch_train.py reports for PyTorch.
func BenchmarkSandwichStep(b *testing.B) {
	for _, r := range []int{64, 128} {
		b.Run(fmt.Sprintf("r%d_b32_4subnets", r), func(b *testing.B) {
			sn, err := supernet.Random(supernet.OFAMobileNetV3(1.0, 102), 1)
			if err != nil {
				b.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Batch, cfg.Resolution, cfg.Subnets, cfg.LR = 32, r, 2, 0.01
			tr, err := New(sn, cfg)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, cfg.Batch*3*r*r)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			labels := make([]int, cfg.Batch)
			for i := range labels {
				labels[i] = rng.IntN(102)
			}
			ctx := context.Background()
			if _, err := tr.Step(ctx, x, cfg.Resolution, labels, 0.01); err != nil { // warm-up: graphs, arena
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				if _, err := tr.Step(ctx, x, cfg.Resolution, labels, 0.01); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cfg.Batch*b.N)/time.Since(start).Seconds(), "images/s")
		})
	}
}
