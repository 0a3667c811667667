package nsga2

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Var describes one gene. Integer genes take the values Lo, Lo+1, ..., Hi
// (both bounds must then be whole numbers); real genes take values in [Lo, Hi].
type Var struct {
	Lo, Hi  float64
	Integer bool
}

// EvalFunc evaluates a whole batch so callers can vectorise surrogate calls.
// It returns one objective vector per genome (all minimised) and one constraint
// violation per genome (>= 0, 0 = feasible); a nil cv means all feasible.
// Genomes must not be modified or retained.
type EvalFunc func(ctx context.Context, genomes [][]float64) (objs [][]float64, cv []float64, err error)

// Problem is the search space plus its evaluation.
type Problem struct {
	Vars     []Var
	NumObj   int
	Evaluate EvalFunc
	// Repair, if set, is called on every new genome (random, seeded or
	// offspring) after it has been snapped to the bounds, so the caller can
	// enforce rules of the space (e.g. depth constraints). It edits the genome
	// in place and must leave it within the bounds (integers whole).
	Repair func(genome []float64)
}

// IntCrossover selects the crossover used for integer genes.
type IntCrossover int

const (
	// UniformCrossover swaps each integer gene between the parents with probability 1/2.
	UniformCrossover IntCrossover = iota
	// TwoPointCrossover swaps the integer genes between two random cut points.
	TwoPointCrossover
)

// Config controls a run. Zero values pick the defaults given per field.
type Config struct {
	PopSize     int    // population size μ = offspring count λ; default 100
	Generations int    // generations after the initial one; default 100
	Seed        uint64 // seed of the PCG generator; runs with equal seeds are identical

	CrossoverProb float64 // probability that a pair is recombined; default 0.9
	MutationProb  float64 // per-gene mutation probability; default 1/len(Vars)
	EtaC          float64 // SBX distribution index for real genes; default 15
	EtaM          float64 // polynomial-mutation distribution index for real genes; default 20
	IntCrossover  IntCrossover

	// Initial genomes (e.g. from an archive) placed in the first population
	// after snapping and repair; duplicates are dropped and the rest is random.
	Initial [][]float64

	// MaxTriesFactor bounds the attempts to create unique genomes at
	// MaxTriesFactor*PopSize per generation, so a small space whose distinct
	// genomes are exhausted yields fewer offspring instead of looping; default 50.
	MaxTriesFactor int

	// OnGeneration, if set, is called after the initial population (Generation
	// 0) and after each generation's survival. The population must be treated
	// as read-only.
	OnGeneration func(Progress)
}

// Progress is passed to Config.OnGeneration.
type Progress struct {
	Generation  int
	Evaluations int
	Population  []Individual
}

// Individual is one evaluated genome with its NSGA-II bookkeeping.
type Individual struct {
	Genome   []float64
	Objs     []float64
	CV       float64 // constraint violation, 0 = feasible
	Rank     int     // 0 = first non-dominated front
	Crowding float64 // crowding distance within its front (+Inf at the boundary)
}

// Feasible reports whether the individual satisfies all constraints.
func (ind Individual) Feasible() bool { return ind.CV == 0 }

func (p *Problem) validate() error {
	if len(p.Vars) == 0 {
		return errors.New("problem has no variables")
	}
	if p.NumObj < 1 {
		return fmt.Errorf("problem has %d objectives, need at least 1", p.NumObj)
	}
	if p.Evaluate == nil {
		return errors.New("problem has no Evaluate function")
	}
	for i, v := range p.Vars {
		if math.IsNaN(v.Lo) || math.IsNaN(v.Hi) || math.IsInf(v.Lo, 0) || math.IsInf(v.Hi, 0) || v.Lo > v.Hi {
			return fmt.Errorf("variable %d: invalid bounds [%v, %v]", i, v.Lo, v.Hi)
		}
		if v.Integer && (v.Lo != math.Trunc(v.Lo) || v.Hi != math.Trunc(v.Hi)) {
			return fmt.Errorf("variable %d: integer bounds [%v, %v] are not whole numbers", i, v.Lo, v.Hi)
		}
	}
	return nil
}

func (c Config) withDefaults(nvars int) (Config, error) {
	if c.PopSize == 0 {
		c.PopSize = 100
	}
	if c.PopSize < 2 {
		return c, fmt.Errorf("population size %d is below 2", c.PopSize)
	}
	if c.Generations == 0 {
		c.Generations = 100
	}
	if c.Generations < 0 {
		return c, fmt.Errorf("negative generation count %d", c.Generations)
	}
	if c.CrossoverProb == 0 {
		c.CrossoverProb = 0.9
	}
	if c.MutationProb == 0 {
		c.MutationProb = 1 / float64(nvars)
	}
	if c.EtaC == 0 {
		c.EtaC = 15
	}
	if c.EtaM == 0 {
		c.EtaM = 20
	}
	if c.MaxTriesFactor == 0 {
		c.MaxTriesFactor = 50
	}
	if !(c.CrossoverProb >= 0 && c.CrossoverProb <= 1) || !(c.MutationProb >= 0 && c.MutationProb <= 1) {
		return c, fmt.Errorf("probabilities outside [0, 1] (crossover %v, mutation %v)", c.CrossoverProb, c.MutationProb)
	}
	if !(c.EtaC > 0) || !(c.EtaM > 0) {
		return c, fmt.Errorf("distribution indices must be positive (EtaC %v, EtaM %v)", c.EtaC, c.EtaM)
	}
	if c.IntCrossover != UniformCrossover && c.IntCrossover != TwoPointCrossover {
		return c, fmt.Errorf("unknown integer crossover %d", c.IntCrossover)
	}
	return c, nil
}
