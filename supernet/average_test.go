package supernet

import (
	"math"
	"strings"
	"testing"
)

func TestAverage(t *testing.T) {
	spec := MobileNetV2Space(10)
	var sns []*Supernet
	for seed := range uint64(3) {
		sn, err := Random(spec, seed+1)
		if err != nil {
			t.Fatal(err)
		}
		sn.Meta["round"] = string(rune('0' + seed))
		sns = append(sns, sn)
	}
	for _, tc := range []struct {
		name string
		in   []*Supernet
	}{
		{"one", sns[:1]},
		{"two", sns[:2]},
		{"three", sns},
	} {
		t.Run(tc.name, func(t *testing.T) {
			avg, err := Average(tc.in...)
			if err != nil {
				t.Fatal(err)
			}
			if avg.Meta["round"] != tc.in[len(tc.in)-1].Meta["round"] {
				t.Errorf("meta %v, want the last input's", avg.Meta)
			}
			for i, p := range avg.Params() {
				var worst float64
				for j, v := range p.Data {
					var want float64
					for _, sn := range tc.in {
						want += float64(sn.Params()[i].Data[j])
					}
					want /= float64(len(tc.in))
					worst = max(worst, math.Abs(float64(v)-want))
				}
				if worst > 1e-6 {
					t.Fatalf("%s: off the mean by %g", p.Name, worst)
				}
				if &p.Data[0] == &tc.in[0].Params()[i].Data[0] {
					t.Fatalf("%s shares the first input's storage", p.Name)
				}
			}
		})
	}
	// The inputs are untouched.
	again, _ := Random(spec, 1)
	for i, p := range again.Params() {
		for j, v := range p.Data {
			if sns[0].Params()[i].Data[j] != v {
				t.Fatalf("%s: input changed", p.Name)
			}
		}
	}

	other, err := Random(MobileNetV2Space(11), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []*Supernet
		want string
	}{
		{"none", nil, "no supernets"},
		{"other spec", []*Supernet{sns[0], other}, "spec"},
	} {
		if _, err := Average(tc.in...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one with %q", tc.name, err, tc.want)
		}
	}
}
