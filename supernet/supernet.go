package supernet

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Param is one named tensor of a supernet.
type Param struct {
	Name  string
	Shape []int
	Data  []float32
}

// Supernet is a spec plus its weights, keyed by OFA's state-dict names.
type Supernet struct {
	Spec *Spec
	// Meta is free-form provenance (id, version, source, training run); it travels with
	// native checkpoints and into exported models.
	Meta   map[string]string
	params []Param
	index  map[string]int
}

// Meta keys natgw itself sets.
const (
	MetaID      = "id"
	MetaVersion = "version"
)

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Key is an expected tensor name with its shape.
type Key struct {
	Name  string
	Shape []int
}

// bnKeys are the per-BatchNorm tensors a checkpoint carries (num_batches_tracked aside).
var bnSuffixes = []string{"weight", "bias", "running_mean", "running_var"}

// Keys lists every tensor the spec's supernet holds, in OFA's state-dict order, without
// BatchNorm num_batches_tracked counters (accepted on load, never needed).
func (s *Spec) Keys() []Key {
	var k []Key
	add := func(name string, shape ...int) { k = append(k, Key{name, shape}) }
	bn := func(prefix string, c int) {
		for _, suf := range bnSuffixes {
			add(prefix+"."+suf, c)
		}
	}
	se := func(prefix string, mid int) {
		semid := s.SEWidth(mid)
		add(prefix+".se.fc.reduce.weight", semid, mid, 1, 1)
		add(prefix+".se.fc.reduce.bias", semid)
		add(prefix+".se.fc.expand.weight", mid, semid, 1, 1)
		add(prefix+".se.fc.expand.bias", mid)
	}
	add("first_conv.conv.weight", s.Stem.Out, 3, s.Stem.Kernel, s.Stem.Kernel)
	bn("first_conv.bn", s.Stem.Out)

	in := s.Stem.Out
	add("blocks.0.conv.depth_conv.conv.weight", in, 1, s.First.Kernel, s.First.Kernel)
	bn("blocks.0.conv.depth_conv.bn", in)
	if s.First.SE {
		se("blocks.0.conv.depth_conv", in)
	}
	add("blocks.0.conv.point_linear.conv.weight", s.First.Out, in, 1, 1)
	bn("blocks.0.conv.point_linear.bn", s.First.Out)

	kmax := s.Kernels[len(s.Kernels)-1]
	for _, g := range s.AllBlocks() {
		b, in, out, mid := g.Index, g.In, g.Out, g.Mid
		p := fmt.Sprintf("blocks.%d.conv", b+1)
		add(p+".inverted_bottleneck.conv.conv.weight", mid, in, 1, 1)
		bn(p+".inverted_bottleneck.bn.bn", mid)
		for i := 0; i+1 < len(s.Kernels); i++ {
			small, large := s.Kernels[i], s.Kernels[i+1]
			add(fmt.Sprintf("%s.depth_conv.conv.%dto%d_matrix", p, large, small), small*small, small*small)
		}
		add(p+".depth_conv.conv.conv.weight", mid, 1, kmax, kmax)
		bn(p+".depth_conv.bn.bn", mid)
		if g.Stage.SE {
			se(p+".depth_conv", mid)
		}
		add(p+".point_linear.conv.conv.weight", out, mid, 1, 1)
		bn(p+".point_linear.bn.bn", out)
	}
	feat := s.FeatureWidth()
	if fe := s.FinalExpand; fe != nil {
		add("final_expand_layer.conv.weight", fe.Out, feat, 1, 1)
		if fe.BN {
			bn("final_expand_layer.bn", fe.Out)
		}
		feat = fe.Out
	}
	if fm := s.FeatureMix; fm != nil {
		add("feature_mix_layer.conv.weight", fm.Out, feat, 1, 1)
		if fm.BN {
			bn("feature_mix_layer.bn", fm.Out)
		}
		feat = fm.Out
	}
	add("classifier.linear.weight", s.Classes, feat)
	add("classifier.linear.bias", s.Classes)
	return k
}

// New builds a supernet from tensors that must match the spec's keys exactly (same names
// and shapes, any order). The data slices are used, not copied.
func New(spec *Spec, params []Param, meta map[string]string) (*Supernet, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	byName := make(map[string]Param, len(params))
	for _, p := range params {
		if _, dup := byName[p.Name]; dup {
			return nil, fmt.Errorf("key %s: appears twice", p.Name)
		}
		byName[p.Name] = p
	}
	keys := spec.Keys()
	sn := &Supernet{Spec: spec, Meta: map[string]string{}, index: make(map[string]int, len(keys))}
	for k, v := range meta {
		sn.Meta[k] = v
	}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k.Name] = true
	}
	// Report the first bad key in the caller's order, so errors point at the file's first problem.
	for _, p := range params {
		if !want[p.Name] {
			return nil, fmt.Errorf("key %s: not part of spec %s", p.Name, spec.Name)
		}
	}
	for _, k := range keys {
		p, ok := byName[k.Name]
		if !ok {
			return nil, fmt.Errorf("key %s: missing (spec %s wants shape %v)", k.Name, spec.Name, k.Shape)
		}
		if !slices.Equal(p.Shape, k.Shape) {
			return nil, fmt.Errorf("key %s: shape %v, spec %s wants %v", k.Name, p.Shape, spec.Name, k.Shape)
		}
		if len(p.Data) != numel(k.Shape) {
			return nil, fmt.Errorf("key %s: %d values for shape %v", k.Name, len(p.Data), k.Shape)
		}
		sn.index[k.Name] = len(sn.params)
		sn.params = append(sn.params, Param{Name: k.Name, Shape: k.Shape, Data: p.Data})
	}
	return sn, nil
}

// Params returns the tensors in the spec's key order. The slices are shared with the supernet.
func (sn *Supernet) Params() []Param { return sn.params }

// Tensor returns the named tensor's data (shared) or nil.
func (sn *Supernet) Tensor(name string) []float32 {
	i, ok := sn.index[name]
	if !ok {
		return nil
	}
	return sn.params[i].Data
}

// Param returns the named tensor.
func (sn *Supernet) Param(name string) (Param, bool) {
	i, ok := sn.index[name]
	if !ok {
		return Param{}, false
	}
	return sn.params[i], true
}

// NumParams is the total number of values the supernet holds.
func (sn *Supernet) NumParams() int64 {
	var n int64
	for _, p := range sn.params {
		n += int64(len(p.Data))
	}
	return n
}

// Random builds a supernet with seeded random weights that keep activations in a sane
// range: for tests, benchmarks and fresh starts. Kernel-transform matrices are identity,
// BatchNorm statistics neutral.
func Random(spec *Spec, seed uint64) (*Supernet, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var params []Param
	for _, k := range spec.Keys() {
		d := make([]float32, numel(k.Shape))
		name := k.Name
		switch {
		case hasSuffix(name, "_matrix"):
			n := k.Shape[0]
			for i := range n {
				d[i*n+i] = 1
			}
		case hasSuffix(name, ".running_var"):
			for i := range d {
				d[i] = 1
			}
		case hasSuffix(name, ".running_mean"), hasSuffix(name, "bias"):
		case isBN(name) && hasSuffix(name, ".weight"):
			for i := range d {
				d[i] = 1
			}
		default:
			fanIn := 1
			for _, s := range k.Shape[1:] {
				fanIn *= s
			}
			std := 1.0 / sqrt(float64(fanIn))
			for i := range d {
				d[i] = float32(rng.NormFloat64() * std)
			}
		}
		params = append(params, Param{Name: name, Shape: k.Shape, Data: d})
	}
	return New(spec, params, map[string]string{MetaID: fmt.Sprintf("random-%d", seed)})
}

// SelectClasses returns a supernet whose classifier keeps only the given rows, in that
// order (e.g. an ImageNet head narrowed to a data set's classes); every other tensor is
// shared with sn.
func (sn *Supernet) SelectClasses(rows []int) (*Supernet, error) {
	if len(rows) == 0 {
		return nil, fmt.Errorf("select classes: no rows")
	}
	spec := *sn.Spec
	spec.Classes = len(rows)
	w, b := sn.Tensor("classifier.linear.weight"), sn.Tensor("classifier.linear.bias")
	in := len(w) / sn.Spec.Classes
	nw, nb := make([]float32, 0, len(rows)*in), make([]float32, 0, len(rows))
	for _, r := range rows {
		if r < 0 || r >= sn.Spec.Classes {
			return nil, fmt.Errorf("select classes: row %d outside [0,%d)", r, sn.Spec.Classes)
		}
		nw = append(nw, w[r*in:(r+1)*in]...)
		nb = append(nb, b[r])
	}
	params := make([]Param, len(sn.params))
	for i, p := range sn.params {
		switch p.Name {
		case "classifier.linear.weight":
			p = Param{Name: p.Name, Shape: []int{len(rows), in}, Data: nw}
		case "classifier.linear.bias":
			p = Param{Name: p.Name, Shape: []int{len(rows)}, Data: nb}
		}
		params[i] = p
	}
	return New(&spec, params, sn.Meta)
}
