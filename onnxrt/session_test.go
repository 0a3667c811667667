package onnxrt

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

const a0Tol = 1e-4

func TestSessionA0Parity(t *testing.T) {
	env := newTestEnv(t, 2)
	f := loadA0(t)
	s, err := env.NewSession(f.model)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	in, out := s.Inputs(), s.Outputs()
	if len(in) != 1 || in[0].ElementType != "float32" || !slices.Equal(in[0].Shape, []int64{-1, 3, 128, 128}) {
		t.Errorf("inputs = %+v, want one float32 [-1 3 128 128]", in)
	}
	if len(out) != 1 || out[0].ElementType != "float32" || !slices.Equal(out[0].Shape, []int64{-1, 102}) {
		t.Errorf("outputs = %+v, want one float32 [-1 102]", out)
	}

	const img = 3 * 128 * 128
	tests := []struct {
		name  string
		input []float32
		shape []int64
		want  []float32
	}{
		{"batch2", f.input, []int64{2, 3, 128, 128}, f.logits},
		{"batch1_image0", f.input[:img], []int64{1, 3, 128, 128}, f.logits[:102]},
		{"batch1_image1", f.input[img:], []int64{1, 3, 128, 128}, f.logits[102:]},
		{"batch3_repeat", slices.Concat(f.input, f.input[:img]), []int64{3, 3, 128, 128}, slices.Concat(f.logits, f.logits[:102])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, shape, err := s.Run(context.Background(), tc.input, tc.shape)
			if err != nil {
				t.Fatal(err)
			}
			if want := []int64{tc.shape[0], 102}; !slices.Equal(shape, want) {
				t.Fatalf("output shape %v, want %v", shape, want)
			}
			if d := testutil.MaxAbsDiff(t, got, tc.want); d > a0Tol {
				t.Errorf("max abs diff %.3g > %g", d, a0Tol)
			} else {
				t.Logf("max abs diff %.3g", d)
			}
		})
	}
}

func TestSessionConcurrentRun(t *testing.T) {
	env := newTestEnv(t, 2)
	f := loadA0(t)
	s, err := env.NewSession(f.model)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shape := []int64{2, 3, 128, 128}
	want, _, err := s.Run(context.Background(), f.input, shape)
	if err != nil {
		t.Fatal(err)
	}

	const workers, runs = 8, 3
	// A worker reports an error or an output that differs; the diff is measured back on
	// the test goroutine, where MaxAbsDiff may stop the test.
	type result struct {
		w, r int
		got  []float32
		err  error
	}
	var wg sync.WaitGroup
	results := make(chan result, workers*runs)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < runs; r++ {
				got, _, err := s.Run(context.Background(), f.input, shape)
				if err != nil {
					results <- result{w: w, r: r, err: err}
					return
				}
				if !slices.Equal(got, want) {
					results <- result{w: w, r: r, got: got}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	for res := range results {
		if res.err != nil {
			t.Errorf("worker %d run %d: %v", res.w, res.r, res.err)
			continue
		}
		t.Errorf("worker %d run %d: output differs (max abs %.3g)", res.w, res.r, testutil.MaxAbsDiff(t, res.got, want))
	}
}

func TestSessionRunErrors(t *testing.T) {
	env := newTestEnv(t, 1)
	s, err := env.NewSession(tinyModel(t, 2, nil))
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		input []float32
		shape []int64
		want  error // nil: any error
	}{
		{"rank", context.Background(), make([]float32, 4), []int64{4}, nil},
		{"fixed_dim", context.Background(), make([]float32, 5), []int64{1, 5}, nil},
		{"zero_batch", context.Background(), nil, []int64{0, 4}, nil},
		{"negative", context.Background(), make([]float32, 4), []int64{-1, 4}, nil},
		{"short_data", context.Background(), make([]float32, 7), []int64{2, 4}, nil},
		{"long_data", context.Background(), make([]float32, 9), []int64{2, 4}, nil},
		{"huge", context.Background(), make([]float32, 4), []int64{1 << 62, 4}, nil},
		{"canceled", canceled, make([]float32, 4), []int64{1, 4}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.Run(tc.ctx, tc.input, tc.shape)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}

	got, shape, err := s.Run(context.Background(), []float32{1, 2, 3, 4, 5, 6, 7, 8}, []int64{2, 4})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{2, 4, 6, 8, 10, 12, 14, 16}; !slices.Equal(got, want) || !slices.Equal(shape, []int64{2, 4}) {
		t.Fatalf("Run = %v %v, want %v [2 4]", got, shape, want)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.Run(context.Background(), make([]float32, 4), []int64{1, 4}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
}

func TestSessionMetadata(t *testing.T) {
	env := newTestEnv(t, 1)
	want := map[string]string{"subnet": "A0", "resolution": "128"}
	s, err := env.NewSession(tinyModel(t, 1, want))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got["subnet"] != "A0" || got["resolution"] != "128" {
		t.Fatalf("Metadata = %v, want %v", got, want)
	}

	empty, err := env.NewSession(tinyModel(t, 1, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if got, err := empty.Metadata(); err != nil || len(got) != 0 {
		t.Fatalf("Metadata of a model without metadata_props = %v, %v", got, err)
	}
}

func TestNewSessionRejects(t *testing.T) {
	env := newTestEnv(t, 1)
	tests := []struct {
		name  string
		model []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not an onnx model")},
		{"truncated", tinyModel(t, 1, nil)[:20]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := env.NewSession(tc.model); err == nil {
				s.Close()
				t.Fatal("NewSession succeeded")
			}
		})
	}
	if n := env.LiveSessions(); n != 0 {
		t.Fatalf("live sessions after failed creations = %d", n)
	}
}

// BenchmarkRunA0 measures Run latency of A0_smallest with 2 intra-op threads.
func BenchmarkRunA0(b *testing.B) {
	env := newTestEnv(b, 2)
	f := loadA0(b)
	s, err := env.NewSession(f.model)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const img = 3 * 128 * 128
	for _, batch := range []int{1, 8} {
		input := make([]float32, 0, batch*img)
		for i := 0; i < batch; i++ {
			input = append(input, f.input[(i%2)*img:(i%2+1)*img]...)
		}
		shape := []int64{int64(batch), 3, 128, 128}
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			ctx := context.Background()
			if _, _, err := s.Run(ctx, input, shape); err != nil { // warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, _, err := s.Run(ctx, input, shape); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000/float64(batch), "ms/image")
		})
	}
}

// BenchmarkNewSessionA0 measures building a session (what a cache miss costs after loading the bytes).
func BenchmarkNewSessionA0(b *testing.B) {
	env := newTestEnv(b, 2)
	f := loadA0(b)
	for b.Loop() {
		s, err := env.NewSession(f.model)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
