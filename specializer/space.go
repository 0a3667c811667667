package specializer

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/natgw/natgw/specializer/nsga2"
	"github.com/natgw/natgw/supernet"
)

// Features is the surrogates' view of an arch, a fixed-length vector in [0, 1]:
//
//	[0]              resolution, (r − rmin)/(rmax − rmin)
//	[1 .. S]         depth of each stage, (d − dmin)/(dmax − dmin) (0 when a stage has one choice)
//	[1+S+2b]         block b's kernel: (index+1)/len(Kernels), 0 when the block is skipped
//	[2+S+2b]         block b's expand ratio: (index+1)/len(Expands), 0 when skipped
//
// for S stages and blocks b = 0..NumBlocks−1 (46 values in OFA's MobileNetV3 space). Unlike
// one-hot genes, ordered choices stay ordered, which suits the distance-based RBF and GP
// models, and a skipped block sits at 0, apart from every real choice. The arch must be
// valid; it is canonicalised first, so equal subnets get equal features.
func Features(spec *supernet.Spec, arch supernet.Arch) ([]float64, error) {
	a, err := spec.Canonical(arch)
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	nb := spec.NumBlocks()
	f := make([]float64, 0, 1+len(spec.Stages)+2*nb)
	f = append(f, norm(slices.Index(spec.Resolutions, a.R), len(spec.Resolutions)))
	for i, st := range spec.Stages {
		f = append(f, norm(slices.Index(st.Depths, a.D[i]), len(st.Depths)))
	}
	for b := range nb {
		if !spec.Active(a, b) {
			f = append(f, 0, 0)
			continue
		}
		k, e := slices.Index(spec.Kernels, a.KS[b]), slices.Index(spec.Expands, a.E[b])
		f = append(f, float64(k+1)/float64(len(spec.Kernels)), float64(e+1)/float64(len(spec.Expands)))
	}
	return f, nil
}

// norm maps choice index i of n to [0, 1].
func norm(i, n int) float64 {
	if n < 2 {
		return 0
	}
	return float64(i) / float64(n-1)
}

// RandomArch draws a canonical arch uniformly per choice: resolution, each stage's depth,
// each block's kernel and expand ratio.
func RandomArch(spec *supernet.Spec, rng *rand.Rand) supernet.Arch {
	nb := spec.NumBlocks()
	a := supernet.Arch{KS: make([]int, nb), E: make([]int, nb), D: make([]int, len(spec.Stages)),
		R: spec.Resolutions[rng.IntN(len(spec.Resolutions))]}
	for i, st := range spec.Stages {
		a.D[i] = st.Depths[rng.IntN(len(st.Depths))]
	}
	for b := range nb {
		a.KS[b] = spec.Kernels[rng.IntN(len(spec.Kernels))]
		a.E[b] = spec.Expands[rng.IntN(len(spec.Expands))]
	}
	c, err := spec.Canonical(a)
	if err != nil {
		panic(fmt.Sprintf("random arch outside its own space: %v", err)) // built from the spec's choices
	}
	return c
}

// genomeVars are the integer genes of spec.Encode for NSGA-II.
func genomeVars(spec *supernet.Spec) []nsga2.Var {
	g := spec.GeneChoices()
	vars := make([]nsga2.Var, len(g))
	for i, n := range g {
		vars[i] = nsga2.Var{Lo: 0, Hi: float64(n - 1), Integer: true}
	}
	return vars
}

// genome is an arch's encoding as NSGA-II genes.
func genome(spec *supernet.Spec, a supernet.Arch) ([]float64, error) {
	x, err := spec.Encode(a)
	if err != nil {
		return nil, err
	}
	g := make([]float64, len(x))
	for i, v := range x {
		g[i] = float64(v)
	}
	return g, nil
}

// repairGenome makes any in-bounds genome a valid encoding: within each stage the
// non-skipped genes move to the front in order, their count is snapped to the nearest
// depth choice (dropping trailing ones, or repeating the last active gene — the smallest
// kernel and expand ratio when there is none), and the result goes through Decode/Encode
// so it is canonical.
func repairGenome(spec *supernet.Spec, g []float64) {
	x := make([]int, len(g))
	for i, v := range g {
		x[i] = int(v)
	}
	for st, stage := range spec.Stages {
		start := 2 + spec.StageStart(st)
		genes := x[start : start+stage.MaxDepth()]
		var active []int
		for _, v := range genes {
			if v != 0 {
				active = append(active, v)
			}
		}
		d := nearestChoice(stage.Depths, len(active))
		for len(active) < d {
			last := 1
			if len(active) > 0 {
				last = active[len(active)-1]
			}
			active = append(active, last)
		}
		for i := range genes {
			genes[i] = 0
			if i < d {
				genes[i] = active[i]
			}
		}
	}
	a, err := spec.Decode(x)
	if err != nil {
		panic(fmt.Sprintf("repair left an invalid encoding %v: %v", x, err)) // the loop above guarantees validity
	}
	y, _ := spec.Encode(a)
	for i, v := range y {
		g[i] = float64(v)
	}
}

// archOf decodes a repaired genome.
func archOf(spec *supernet.Spec, g []float64) (supernet.Arch, error) {
	x := make([]int, len(g))
	for i, v := range g {
		x[i] = int(v)
	}
	return spec.Decode(x)
}

func nearestChoice(choices []int, v int) int {
	best := choices[0]
	for _, c := range choices {
		if d, bd := absInt(c-v), absInt(best-v); d < bd || (d == bd && c > best) {
			best = c
		}
	}
	return best
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
