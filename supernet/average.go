package supernet

import (
	"bytes"
	"errors"
	"fmt"
)

// Average returns a new supernet whose every tensor is the element-wise mean of the
// inputs' (stochastic weight averaging). Averaging weights that one run reached at the ends
// of successive learning-rate cycles lands nearer the middle of the basin they share than
// any single end does, at no cost at inference. The inputs must share one spec; BatchNorm
// running statistics are averaged too, though callers recalibrate them before measuring.
// The result carries the last input's metadata, the newest weights' provenance.
func Average(sns ...*Supernet) (*Supernet, error) {
	if len(sns) == 0 {
		return nil, errors.New("average: no supernets")
	}
	spec := sns[0].Spec.MarshalSpec()
	for i, sn := range sns[1:] {
		if !bytes.Equal(sn.Spec.MarshalSpec(), spec) {
			return nil, fmt.Errorf("average: supernet %d has spec %s, supernet 0 has %s", i+1, sn.Spec.Name, sns[0].Spec.Name)
		}
	}
	params := make([]Param, len(sns[0].params))
	inv := 1 / float64(len(sns))
	for i, p := range sns[0].params {
		sum := make([]float64, len(p.Data))
		for _, sn := range sns {
			for j, v := range sn.params[i].Data {
				sum[j] += float64(v)
			}
		}
		d := make([]float32, len(p.Data))
		for j, v := range sum {
			d[j] = float32(v * inv)
		}
		params[i] = Param{Name: p.Name, Shape: p.Shape, Data: d}
	}
	return New(sns[0].Spec, params, sns[len(sns)-1].Meta)
}
