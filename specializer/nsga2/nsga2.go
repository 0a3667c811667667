package nsga2

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
)

// Result is the outcome of Run.
type Result struct {
	// Population is the last fully evaluated population, ordered by rank,
	// then crowding distance (best first).
	Population  []Individual
	Generations int // generations completed after the initial population
	Evaluations int // genomes evaluated
}

// Front returns the feasible individuals of the first front of the population.
func (r Result) Front() []Individual {
	var out []Individual
	for _, ind := range r.Population {
		if ind.Rank == 0 && ind.Feasible() {
			out = append(out, ind)
		}
	}
	return out
}

// Run executes NSGA-II. When ctx ends, it returns the last fully evaluated
// population together with an error wrapping ctx.Err(); the Result is then
// still usable (empty only if the initial population was not evaluated).
// Runs are deterministic for a given Config.Seed and deterministic Evaluate.
// No genome is evaluated twice: duplicates of any genome created earlier in
// the run are discarded, so a population never holds two identical
// individuals, and a run over a small space ends early once no unseen genome
// can be produced within Config.MaxTriesFactor attempts.
func Run(ctx context.Context, p Problem, cfg Config) (Result, error) {
	if err := p.validate(); err != nil {
		return Result{}, fmt.Errorf("nsga2: %w", err)
	}
	cfg, err := cfg.withDefaults(len(p.Vars))
	if err != nil {
		return Result{}, fmt.Errorf("nsga2: %w", err)
	}
	s := &state{p: &p, cfg: &cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6e736761322d7267)), seen: map[string]bool{}}

	genomes, err := s.initial()
	if err != nil {
		return Result{}, err
	}
	var res Result
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("nsga2: canceled before the initial population: %w", err)
	}
	pop, err := s.evaluate(ctx, genomes)
	if err != nil {
		return res, fmt.Errorf("nsga2: initial population: %w", err)
	}
	res.Evaluations = len(pop)
	res.Population = survive(pop, len(pop))
	s.progress(0, res)

	for gen := 1; gen <= cfg.Generations; gen++ {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("nsga2: stopped after generation %d: %w", res.Generations, err)
		}
		children, err := s.offspring(res.Population)
		if err != nil {
			return res, err
		}
		if len(children) == 0 { // the space has no unseen genome left
			break
		}
		off, err := s.evaluate(ctx, children)
		if err != nil {
			return res, fmt.Errorf("nsga2: generation %d: %w", gen, err)
		}
		res.Evaluations += len(off)
		merged := append(append(make([]Individual, 0, len(res.Population)+len(off)), res.Population...), off...)
		res.Population = survive(merged, cfg.PopSize)
		res.Generations = gen
		s.progress(gen, res)
	}
	return res, nil
}

type state struct {
	p    *Problem
	cfg  *Config
	rng  *rand.Rand
	seen map[string]bool // every genome ever created; duplicates are never evaluated twice
}

func (s *state) progress(gen int, res Result) {
	if s.cfg.OnGeneration == nil {
		return
	}
	s.cfg.OnGeneration(Progress{Generation: gen, Evaluations: res.Evaluations, Population: append([]Individual(nil), res.Population...)})
}

// key identifies a genome exactly, for duplicate elimination.
func key(g []float64) string {
	b := make([]byte, 8*len(g))
	for i, x := range g {
		if x == 0 {
			x = 0 // fold -0 into +0
		}
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return string(b)
}

// finish snaps, repairs and checks a new genome and reports whether it is new.
func (s *state) finish(g []float64) (bool, error) {
	snap(g, s.p.Vars)
	if s.p.Repair != nil {
		s.p.Repair(g)
		if !inBounds(g, s.p.Vars) {
			return false, fmt.Errorf("nsga2: Repair left genome %v outside the bounds", g)
		}
	}
	k := key(g)
	if s.seen[k] {
		return false, nil
	}
	s.seen[k] = true
	return true, nil
}

// initial builds the first population from cfg.Initial plus random genomes.
func (s *state) initial() ([][]float64, error) {
	n := s.cfg.PopSize
	out := make([][]float64, 0, n)
	for i, g := range s.cfg.Initial {
		if len(out) == n {
			break
		}
		if len(g) != len(s.p.Vars) {
			return nil, fmt.Errorf("nsga2: initial genome %d has %d genes, want %d", i, len(g), len(s.p.Vars))
		}
		c := append([]float64(nil), g...)
		ok, err := s.finish(c)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	for tries := s.cfg.MaxTriesFactor * n; len(out) < n && tries > 0; tries-- {
		g := randomGenome(s.rng, s.p.Vars)
		ok, err := s.finish(g)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, g)
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("nsga2: could only create %d distinct genomes", len(out))
	}
	return out, nil
}

// tournament is binary tournament selection on the crowded-comparison order.
func (s *state) tournament(pop []Individual) []float64 {
	a, b := s.rng.IntN(len(pop)), s.rng.IntN(len(pop))
	switch {
	case better(pop[a], pop[b]):
		return pop[a].Genome
	case better(pop[b], pop[a]):
		return pop[b].Genome
	case s.rng.IntN(2) == 0:
		return pop[a].Genome
	default:
		return pop[b].Genome
	}
}

// offspring creates up to PopSize new, never-seen genomes.
func (s *state) offspring(pop []Individual) ([][]float64, error) {
	n := s.cfg.PopSize
	out := make([][]float64, 0, n)
	for tries := s.cfg.MaxTriesFactor * n; len(out) < n && tries > 0; tries -= 2 {
		c1 := append([]float64(nil), s.tournament(pop)...)
		c2 := append([]float64(nil), s.tournament(pop)...)
		if s.rng.Float64() < s.cfg.CrossoverProb {
			crossover(s.rng, c1, c2, s.p.Vars, s.cfg)
		}
		for _, c := range [][]float64{c1, c2} {
			mutate(s.rng, c, s.p.Vars, s.cfg)
			ok, err := s.finish(c)
			if err != nil {
				return nil, err
			}
			if ok && len(out) < n {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// evaluate calls the batch evaluation and checks its output.
func (s *state) evaluate(ctx context.Context, genomes [][]float64) ([]Individual, error) {
	objs, cv, err := s.p.Evaluate(ctx, genomes)
	if err != nil {
		return nil, fmt.Errorf("evaluate %d genomes: %w", len(genomes), err)
	}
	if len(objs) != len(genomes) || (cv != nil && len(cv) != len(genomes)) {
		return nil, fmt.Errorf("evaluate returned %d objective vectors and %d violations for %d genomes", len(objs), len(cv), len(genomes))
	}
	pop := make([]Individual, len(genomes))
	for i, g := range genomes {
		if len(objs[i]) != s.p.NumObj {
			return nil, fmt.Errorf("evaluate returned %d objectives for genome %d, want %d", len(objs[i]), i, s.p.NumObj)
		}
		for _, f := range objs[i] {
			if math.IsNaN(f) {
				return nil, fmt.Errorf("evaluate returned NaN objective for genome %d", i)
			}
		}
		v := 0.0
		if cv != nil {
			v = cv[i]
		}
		if !(v >= 0) {
			return nil, fmt.Errorf("evaluate returned constraint violation %v for genome %d, want >= 0", v, i)
		}
		pop[i] = Individual{Genome: g, Objs: append([]float64(nil), objs[i]...), CV: v}
	}
	return pop, nil
}
