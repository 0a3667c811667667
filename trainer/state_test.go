package trainer

import (
	"math"
	"slices"
	"testing"

	"github.com/natgw/natgw/supernet"
)

// TestWithClasses: a new class count gets a fresh head, N(0, 0.01) weights and zero bias,
// and every other tensor is carried over; the same count returns the supernet itself.
func TestWithClasses(t *testing.T) {
	src, err := supernet.Random(tinySpec(7), 3)
	if err != nil {
		t.Fatal(err)
	}
	if same, err := WithClasses(src, 7, 1, HeadStd); err != nil || same != src {
		t.Fatalf("WithClasses to the same 7 classes: %p, %v; want the input itself", same, err)
	}
	dst, err := WithClasses(src, 40, 1, HeadStd)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Spec.Classes != 40 || src.Spec.Classes != 7 {
		t.Fatalf("classes: new %d (want 40), source %d (want 7, untouched)", dst.Spec.Classes, src.Spec.Classes)
	}
	for _, p := range dst.Params() {
		old, ok := src.Param(p.Name)
		switch {
		case p.Name == headWeight:
			if len(p.Data) != 40*len(old.Data)/7 {
				t.Fatalf("%s: %d values, want 40 rows of %d", p.Name, len(p.Data), len(old.Data)/7)
			}
			var sum, sq float64
			for _, v := range p.Data {
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			n := float64(len(p.Data))
			mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
			// n is a few thousand: the sample std is within 5 % of 0.01 and the mean near 0.
			if math.Abs(std-HeadStd) > 0.05*HeadStd || math.Abs(mean) > 4*HeadStd/math.Sqrt(n) {
				t.Errorf("%s: mean %.5f, std %.5f; want N(0, %g)", p.Name, mean, std, HeadStd)
			}
		case p.Name == "classifier.linear.bias":
			if slices.ContainsFunc(p.Data, func(v float32) bool { return v != 0 }) {
				t.Errorf("%s: a fresh bias is not zero", p.Name)
			}
		case !ok:
			t.Errorf("%s: not in the source supernet", p.Name)
		case !slices.Equal(p.Data, old.Data):
			t.Errorf("%s: not carried over", p.Name)
		}
	}
}

// TestWithClassesHeadStd: 0 keeps a fresh network's fan-in scale; a negative or NaN spread
// is refused.
func TestWithClassesHeadStd(t *testing.T) {
	src, err := supernet.Random(tinySpec(7), 3)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := WithClasses(src, 40, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := dst.Param(headWeight)
	fanIn := len(w.Data) / 40
	var sq float64
	for _, v := range w.Data {
		sq += float64(v) * float64(v)
	}
	if std, want := math.Sqrt(sq/float64(len(w.Data))), 1/math.Sqrt(float64(fanIn)); math.Abs(std-want) > 0.05*want {
		t.Errorf("head std %.4f with 0, want the fan-in scale %.4f", std, want)
	}
	for _, bad := range []float64{-0.01, math.NaN(), math.Inf(1)} {
		if _, err := WithClasses(src, 40, 1, bad); err == nil {
			t.Errorf("head std %v: no error", bad)
		}
	}
}
