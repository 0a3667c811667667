package affinity

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  bool
	}{
		{in: "1", want: []int{1}},
		{in: "0,2", want: []int{0, 2}},
		{in: "2-3", want: []int{2, 3}},
		{in: " 0-1, 4 ", want: []int{0, 1, 4}},
		{in: "3,1,1-2", want: []int{1, 2, 3}},
		{in: "1023", want: []int{1023}},
		{in: "", err: true},
		{in: " ", err: true},
		{in: "1,", err: true},
		{in: "-1", err: true},
		{in: "3-2", err: true},
		{in: "1024", err: true},
		{in: "0-99999999999", err: true},
		{in: "a", err: true},
		{in: "1-2-3", err: true},
	} {
		got, err := Parse(tc.in)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{1}, "1"},
		{[]int{0, 1, 2, 5, 7, 8}, "0-2,5,7-8"},
	} {
		if got := Format(tc.in); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts is sorted, unique, in range, and
// survives Format and Parse again.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"1", "0,2", "2-3", "0-1,4", "", "3-2", "1-2-3", "-", ",", "1023"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := Parse(s)
		if err != nil {
			return
		}
		if len(cpus) == 0 || !slices.IsSorted(cpus) || len(slices.Compact(slices.Clone(cpus))) != len(cpus) || cpus[0] < 0 || cpus[len(cpus)-1] >= maxCPU {
			t.Fatalf("Parse(%q) = %v", s, cpus)
		}
		again, err := Parse(Format(cpus))
		if err != nil || !slices.Equal(again, cpus) {
			t.Fatalf("Parse(Format(%v)) = %v, %v", cpus, again, err)
		}
	})
}
