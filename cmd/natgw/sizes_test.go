package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/natgw/natgw/preprocess"
)

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"128", []int{128}},
		{"96, 128,160", []int{96, 128, 160}},
		{"96,96,128", []int{96, 96, 128}},
		{"", nil},
		{"96,", nil},
		{"7", nil},
		{"abc", nil},
		{"1e2", nil},
		{"99999", nil},
		{strings.Repeat("96,", 64) + "96", nil},
	} {
		got, err := parseSizes(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%q accepted: %v", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseSizes(f *testing.F) {
	for _, s := range []string{"96,128,160", "", "8", ",", "1024,7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseSizes(s)
		if err != nil {
			return
		}
		if len(v) == 0 || len(v) > maxSizes {
			t.Fatalf("%q: %d sizes", s, len(v))
		}
		for _, x := range v {
			if x < 8 || x > preprocess.MaxResolution {
				t.Fatalf("%q: size %d", s, x)
			}
		}
	})
}
