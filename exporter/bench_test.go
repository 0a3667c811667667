package exporter

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/supernet"
)

// BenchmarkExportLargest times Export of the largest OFA MobileNetV3 subnet (1000
// classes, r 224; extraction not included).
func BenchmarkExportLargest(b *testing.B) {
	spec := supernet.OFAMobileNetV3(1.0, 1000)
	a := spec.Largest()
	sub := randomSubnet(b, spec, 1, &a)
	var size int
	cpu := startCPU(b)
	for b.Loop() {
		data, err := Export(sub, Options{})
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	cpu.report()
	b.ReportMetric(float64(size)/1e6, "file-MB")
}

// BenchmarkORTLatency compares onnxruntime latency of natgw's export with the
// PyTorch-exported reference files of the same subnets (same session settings: one
// intra-op and one inter-op thread, all graph optimisations), at batch 1 and 8.
func BenchmarkORTLatency(b *testing.B) {
	dir := parityDir(b)
	env := ortEnv(b, 1)
	sn := loadOFA(b, dir)
	for _, id := range []string{"A0_smallest", "A2_uniform_k5_e4_d3"} {
		c := loadCase(b, dir, id)
		sub, err := sn.Extract(c.Config)
		if err != nil {
			b.Fatal(err)
		}
		ours, err := Export(sub, Options{})
		if err != nil {
			b.Fatal(err)
		}
		torch, err := os.ReadFile(filepath.Join(dir, id+".onnx"))
		if err != nil {
			b.Fatal(err)
		}
		r := c.Resolution
		two := testutil.ReadF32(b, filepath.Join(dir, id+"_input.bin"))
		img := 3 * r * r
		x8 := make([]float32, 8*img)
		for i := range 8 {
			copy(x8[i*img:], two[(i%2)*img:(i%2+1)*img])
		}
		// Both files must compute the same function, or the comparison is moot.
		if d := testutil.MaxAbsDiff(b, ortRun(b, env, ours, two, 2, r), ortRun(b, env, torch, two, 2, r)); d > parityTol {
			b.Fatalf("%s: natgw and torch exports differ by %.3g", id, d)
		}
		for _, m := range []struct {
			name  string
			model []byte
		}{{"natgw", ours}, {"torch", torch}} {
			sess, err := env.NewSession(m.model)
			if err != nil {
				b.Fatal(err)
			}
			for _, n := range []int{1, 8} {
				b.Run(fmt.Sprintf("%s/%s/batch%d", id, m.name, n), func(b *testing.B) {
					x := x8[:n*img]
					shape := []int64{int64(n), 3, int64(r), int64(r)}
					if _, _, err := sess.Run(context.Background(), x, shape); err != nil { // warm-up
						b.Fatal(err)
					}
					cpu := startCPU(b)
					for b.Loop() {
						if _, _, err := sess.Run(context.Background(), x, shape); err != nil {
							b.Fatal(err)
						}
					}
					cpu.report()
					b.ReportMetric(float64(len(m.model))/1e6, "file-MB")
				})
			}
			sess.Close()
		}
	}
}

// cpuClock reports the process CPU time per iteration next to ns/op: on a shared,
// loaded machine wall time swings with other work, CPU time much less.
type cpuClock struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) cpuClock {
	b.ResetTimer()
	return cpuClock{b, processCPU()}
}

func (c cpuClock) report() {
	if c.b.N > 0 {
		c.b.ReportMetric(float64(processCPU()-c.start)/float64(c.b.N)/1e6, "cpu-ms/op")
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
