package specializer

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// ArchiveSampler draws subnets for supernet fine-tuning from the distribution of an
// archive's best members, as NAT's adaptation does: training effort goes to the part of
// the space the search finds promising instead of the whole space. Each gene of the
// integer encoding is copied from a randomly chosen elite member, independently per
// gene, or with probability Uniform drawn uniformly so that no choice starves.
// It satisfies trainer.Sampler.
type ArchiveSampler struct {
	spec    *supernet.Spec
	elite   [][]int
	Uniform float64
}

// NewArchiveSampler takes the n best measured entries, best meaning by successive
// accuracy/MAdds fronts (the first front, then the front of the rest, ...).
func NewArchiveSampler(spec *supernet.Spec, entries []task.Entry, n int, uniform float64) (*ArchiveSampler, error) {
	if n < 1 || uniform < 0 || uniform > 1 {
		return nil, fmt.Errorf("archive sampler: n %d must be ≥ 1 and uniform %g in [0, 1]", n, uniform)
	}
	elite := Elite(entries, n)
	if len(elite) == 0 {
		return nil, errors.New("archive sampler: no measured entry")
	}
	s := &ArchiveSampler{spec: spec, Uniform: uniform}
	for _, e := range elite {
		x, err := spec.Encode(e.Arch)
		if err != nil {
			return nil, fmt.Errorf("archive sampler: %w", err)
		}
		s.elite = append(s.elite, x)
	}
	return s, nil
}

// Resolutions are the elite's input sizes, one per member (so repeated): a training batch
// whose size is drawn from it follows the elite's distribution of the resolution gene, as
// the subnets drawn by Sample do for the others.
func (s *ArchiveSampler) Resolutions() []int {
	out := make([]int, len(s.elite))
	for i, x := range s.elite {
		out[i] = s.spec.Resolutions[x[0]]
	}
	return out
}

// Elite returns up to n measured entries taken front by front (accuracy vs MAdds), each
// front sorted by MAdds. A front larger than the room left gives members spread evenly
// along it, both ends included, so that no cost range is dropped.
func Elite(entries []task.Entry, n int) []task.Entry {
	var rest []task.Entry
	for _, e := range entries {
		if !e.Predicted {
			rest = append(rest, e)
		}
	}
	var out []task.Entry
	for len(out) < n && len(rest) > 0 {
		front := task.Front(rest)
		if len(front) == 0 {
			break
		}
		in := map[string]bool{}
		for _, e := range front {
			in[e.Hash] = true
		}
		out = append(out, spread(front, n-len(out))...)
		kept := rest[:0:0]
		for _, e := range rest {
			if !in[e.Hash] {
				kept = append(kept, e)
			}
		}
		rest = kept
	}
	return out
}

// Sample implements trainer.Sampler. Mixed genes can break a stage's depth rule, so
// the draw goes through the search's genome repair before decoding.
func (s *ArchiveSampler) Sample(r *rand.Rand) supernet.Arch {
	choices := s.spec.GeneChoices()
	g := make([]float64, len(choices))
	for i, c := range choices {
		if r.Float64() < s.Uniform {
			g[i] = float64(r.IntN(c))
		} else {
			g[i] = float64(s.elite[r.IntN(len(s.elite))][i])
		}
	}
	repairGenome(s.spec, g)
	a, err := archOf(s.spec, g)
	if err != nil {
		panic(fmt.Sprintf("repaired genome does not decode: %v", err)) // repairGenome guarantees it
	}
	return a
}

// spread picks k members of a MAdds-sorted front at evenly spaced ranks, ends included.
func spread(front []task.Entry, k int) []task.Entry {
	if k >= len(front) {
		return front
	}
	if k == 1 {
		return front[len(front)-1:]
	}
	out := make([]task.Entry, 0, k)
	for i := range k {
		out = append(out, front[i*(len(front)-1)/(k-1)])
	}
	return out
}
