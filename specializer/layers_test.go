package specializer

import (
	"math/rand/v2"
	"testing"

	"github.com/natgw/natgw/supernet"
)

func TestCountArchMatchesExtract(t *testing.T) {
	big, err := supernet.Random(supernet.OFAMobileNetV3(1.0, 10), 1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := supernet.Random(supernet.MobileNetV2Space(7), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range []*supernet.Supernet{tinySupernet(t), big, v2} {
		rng := rand.New(rand.NewPCG(4, 4))
		archs := []supernet.Arch{sn.Spec.Smallest(), sn.Spec.Largest()}
		for range 20 {
			archs = append(archs, RandomArch(sn.Spec, rng))
		}
		for _, a := range archs {
			sub, err := sn.Extract(a)
			if err != nil {
				t.Fatal(err)
			}
			got, err := CountArch(sn.Spec, a)
			if err != nil {
				t.Fatal(err)
			}
			if want := sub.Count(); got != want {
				t.Fatalf("%s %s: CountArch %+v, Extract().Count() %+v", sn.Spec.Name, a, got, want)
			}
		}
	}
}

func TestFeaturesAndRepair(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	rng := rand.New(rand.NewPCG(9, 9))
	want := 1 + len(spec.Stages) + 2*spec.NumBlocks()
	for range 200 {
		a := RandomArch(spec, rng)
		f, err := Features(spec, a)
		if err != nil || len(f) != want {
			t.Fatalf("features: %d values, %v", len(f), err)
		}
		for _, v := range f {
			if v < 0 || v > 1 {
				t.Fatalf("feature %v outside [0,1]", v)
			}
		}
		// A random in-bounds genome repairs into a valid canonical encoding.
		g := make([]float64, spec.EncodingLen())
		for i, n := range spec.GeneChoices() {
			g[i] = float64(rng.IntN(n))
		}
		repairGenome(spec, g)
		b, err := archOf(spec, g)
		if err != nil {
			t.Fatalf("repaired genome %v: %v", g, err)
		}
		// Repair leaves valid genomes alone.
		g2, _ := genome(spec, b)
		repairGenome(spec, g2)
		if c, _ := archOf(spec, g2); !c.Equal(b) {
			t.Fatalf("repair changed a valid genome: %s -> %s", b, c)
		}
	}
	// Different subnets, different features; equal subnets (non-canonical), equal features.
	a := spec.Largest()
	f1, _ := Features(spec, a)
	a.D[0] = 2
	f2, _ := Features(spec, a)
	a.KS[3] = 3 // block beyond stage 0's depth: not part of the subnet
	f3, _ := Features(spec, a)
	if equalF(f1, f2) || !equalF(f2, f3) {
		t.Fatal("features do not follow the subnet")
	}
	if _, err := Features(spec, supernet.Arch{}); err == nil {
		t.Fatal("invalid arch: no error")
	}
}

func equalF(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
