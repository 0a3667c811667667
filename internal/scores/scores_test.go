package scores

import (
	"math"
	"testing"
)

func TestSoftmaxTopK(t *testing.T) {
	p := Softmax([]float32{1000, 1001, 999, 1001})
	sum := 0.0
	for _, v := range p {
		sum += v
	}
	if math.Abs(sum-1) > 1e-12 || math.IsNaN(p[0]) {
		t.Fatalf("softmax %v", p)
	}
	top := TopK(p, []string{"a", "b", "c"}, 3)
	if len(top) != 3 || top[0].Index != 1 || top[1].Index != 3 || top[2].Index != 0 || top[0].Label != "b" || top[1].Label != "" {
		t.Fatalf("top %+v", top)
	}
	if len(TopK(p, nil, 10)) != 4 || len(TopK(p, nil, -1)) != 0 {
		t.Fatal("k not clamped")
	}
}

func TestArgmax(t *testing.T) {
	for _, c := range []struct {
		v    []float32
		want int
	}{{[]float32{1}, 0}, {[]float32{1, 3, 2}, 1}, {[]float32{5, 5, 1}, 0}, {[]float32{-3, -1, -2}, 1}} {
		if got := Argmax(c.v); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.v, got, c.want)
		}
	}
}
