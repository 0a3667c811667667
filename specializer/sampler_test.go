package specializer

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// TestArchiveSampler: with no uniform mixing every draw is made only of the elite's genes,
// and Elite takes the first front before anything dominated.
func TestArchiveSampler(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	mk := func(a supernet.Arch, madds int64, top1 float64) task.Entry {
		c, err := spec.Canonical(a)
		if err != nil {
			t.Fatal(err)
		}
		return task.Entry{Arch: c, Hash: c.Hash(), MAdds: madds, Top1: top1, Split: task.SplitVal}
	}
	small := mk(spec.Uniform(3, 3, 2, 160), 100, 0.5)
	big := mk(spec.Uniform(7, 6, 4, 224), 400, 0.8)
	dominated := mk(spec.Uniform(5, 4, 3, 192), 300, 0.4)
	if got := Elite([]task.Entry{dominated, big, small}, 2); len(got) != 2 || got[0].Hash != small.Hash || got[1].Hash != big.Hash {
		t.Fatalf("elite %v", got)
	}
	if got := Elite([]task.Entry{dominated, big, small}, 3); len(got) != 3 || got[2].Hash != dominated.Hash {
		t.Fatalf("elite of 3: %v", got)
	}
	s, err := NewArchiveSampler(spec, []task.Entry{small, big, dominated}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	seenK := map[int]bool{}
	for range 200 {
		a := s.Sample(r)
		if err := spec.ValidateArch(a); err != nil {
			t.Fatal(err)
		}
		for b := range spec.NumBlocks() {
			if !spec.Active(a, b) {
				continue
			}
			if k := a.KS[b]; k == 5 {
				t.Fatalf("kernel 5 drawn with no elite member using it: %v", a)
			} else {
				seenK[k] = true
			}
			if a.E[b] == 4 {
				t.Fatalf("expand 4 drawn with no elite member using it: %v", a)
			}
		}
		if a.R != 160 && a.R != 224 {
			t.Fatalf("resolution %d not from the elite", a.R)
		}
	}
	if !seenK[3] || !seenK[7] {
		t.Fatalf("genes of both elite members expected, kernels seen %v", seenK)
	}
	if got := s.Resolutions(); !slices.Equal(got, []int{160, 224}) {
		t.Errorf("elite resolutions %v, want [160 224]", got)
	}
	u, _ := NewArchiveSampler(spec, []task.Entry{small}, 1, 1)
	seen5 := false
	for range 50 {
		a := u.Sample(r)
		for b := range spec.NumBlocks() {
			seen5 = seen5 || (spec.Active(a, b) && a.KS[b] == 5)
		}
	}
	if !seen5 {
		t.Fatal("uniform mixing never drew kernel 5")
	}
	if _, err := NewArchiveSampler(spec, nil, 2, 0); err == nil {
		t.Fatal("empty archive accepted")
	}
}

// TestEliteSpreadsAlongTheFront: a front larger than the room keeps both ends and members
// between, not just its cheapest part.
func TestEliteSpreadsAlongTheFront(t *testing.T) {
	spec := supernet.OFAMobileNetV3(1.0, 10)
	var es []task.Entry
	for i, r := range spec.Resolutions {
		a := spec.Uniform(3, 3, 2, r)
		es = append(es, task.Entry{Arch: a, Hash: a.Hash(), MAdds: int64(100 + i), Top1: 0.1 + 0.01*float64(i), Split: task.SplitVal})
	}
	got := Elite(es, 3)
	if len(got) != 3 || got[0].MAdds != es[0].MAdds || got[2].MAdds != es[len(es)-1].MAdds || got[1].MAdds <= got[0].MAdds || got[1].MAdds >= got[2].MAdds {
		t.Fatalf("elite of 3 from a front of %d: %v", len(es), got)
	}
	if got := Elite(es, 1); len(got) != 1 || got[0].MAdds != es[len(es)-1].MAdds {
		t.Fatalf("elite of 1: %v", got)
	}
}
