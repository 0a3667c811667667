package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCrops(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []float64
		wantErr string
	}{
		{"1,0.875", []float64{1, 0.875}, ""},
		{"0.75, 1 ,0.875", []float64{1, 0.875, 0.75}, ""},
		{"1", []float64{1}, ""},
		{"1.5", nil, "not in"},
		{"0", nil, "not in"},
		{"NaN", nil, "not in"},
		{"1,x", nil, "not a number"},
		{"", nil, "not a number"},
		{"1,1", nil, "given twice"},
	} {
		got, err := parseCrops(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseCrops(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseCrops(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseCrops(f *testing.F) {
	for _, s := range []string{"1,0.875", "0.5", "1,1", ",", "1e-9", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseCrops(s)
		if err != nil {
			return
		}
		for i, c := range got {
			if !(c > 0 && c <= 1) || (i > 0 && got[i-1] <= c) {
				t.Fatalf("parseCrops(%q) = %v: out of range or not strictly decreasing", s, got)
			}
		}
	})
}
