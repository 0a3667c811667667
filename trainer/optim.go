package trainer

import (
	"math"
	"strings"
)

// SGD is PyTorch's torch.optim.SGD with momentum (dampening 0), optionally Nesterov, with
// weight decay only on tensors whose names contain neither "bn" nor "bias" (OFA's
// no_decay_keys "bn#bias"; the kernel-transform matrices do get decay). Each update line
// is one fused multiply-add in float32, as PyTorch's CPU kernels compute it.
type SGD struct {
	Momentum    float64
	Nesterov    bool
	WeightDecay float64
	buf         map[string][]float32 // momentum buffers; absent until a tensor's first update
}

// NoDecay reports whether OFA's no_decay_keys "bn#bias" exempts a tensor from weight decay.
func NoDecay(name string) bool { return strings.Contains(name, "bn") || strings.Contains(name, "bias") }

func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// step updates every tensor some subnet used since the last step with learning rate lr.
// Unused tensors are skipped: no momentum, no decay (PyTorch ≥ 2.0's zero_grad(set_to_none)).
func (o *SGD) step(params []*paramGrad, lr float64) {
	if o.buf == nil {
		o.buf = map[string][]float32{}
	}
	mom, nlr := float32(o.Momentum), float32(-lr)
	for _, p := range params {
		if !p.present {
			continue
		}
		wd := float32(0)
		if !NoDecay(p.name) {
			wd = float32(o.WeightDecay)
		}
		buf, seen := o.buf[p.name]
		if !seen && mom != 0 {
			buf = make([]float32, len(p.data))
			o.buf[p.name] = buf
		}
		for i, g := range p.grad {
			if wd != 0 {
				g = fma32(p.data[i], wd, g)
			}
			d := g
			if mom != 0 {
				if seen {
					buf[i] = buf[i]*mom + g
				} else {
					buf[i] = g
				}
				if o.Nesterov {
					d = fma32(buf[i], mom, g)
				} else {
					d = buf[i]
				}
			}
			p.data[i] = fma32(d, nlr, p.data[i])
		}
	}
}
