package specializer

import (
	"context"
	"math"
	"slices"
	"sync"

	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// synthetic is an Evaluator whose accuracy is an analytic function of the arch: expand
// ratios pay off only in even blocks, large kernels only in every third block, so the
// optimal front is far from what uniform sampling finds.
type synthetic struct {
	spec  *supernet.Spec
	mu    sync.Mutex
	calls int
	// cancelAfter, when > 0, cancels cancel after that many calls (simulates a kill).
	cancelAfter int
	cancel      context.CancelFunc
}

func (s *synthetic) Spec() *supernet.Spec { return s.spec }

func syntheticTop1(spec *supernet.Spec, a supernet.Arch) float64 {
	score := 0.15 * float64(slices.Index(spec.Resolutions, a.R)) / float64(len(spec.Resolutions)-1)
	for b := range spec.NumBlocks() {
		if !spec.Active(a, b) {
			continue
		}
		k, e := slices.Index(spec.Kernels, a.KS[b]), slices.Index(spec.Expands, a.E[b])
		score += 0.02
		if b%2 == 0 {
			score += 0.03 * float64(e)
		} else {
			score -= 0.005 * float64(e)
		}
		if b%3 == 0 {
			score += 0.02 * float64(k)
		} else {
			score -= 0.004 * float64(k)
		}
	}
	return 0.3 + 0.65*math.Tanh(score)
}

func (s *synthetic) Evaluate(ctx context.Context, a supernet.Arch) (task.Entry, error) {
	if err := ctx.Err(); err != nil {
		return task.Entry{}, err
	}
	s.mu.Lock()
	s.calls++
	if s.cancelAfter > 0 && s.calls >= s.cancelAfter && s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	c, err := s.spec.Canonical(a)
	if err != nil {
		return task.Entry{}, err
	}
	cnt, err := CountArch(s.spec, c)
	if err != nil {
		return task.Entry{}, err
	}
	return task.Entry{Arch: c, Hash: c.Hash(), MAdds: cnt.MAdds, Params: cnt.Params, Top1: syntheticTop1(s.spec, c), Split: task.SplitVal}, nil
}
