// Package nsga2 implements the multi-objective genetic search used by the
// specializer to trade predicted accuracy against cost (MAdds, params,
// latency): NSGA-II (Deb, Pratap, Agarwal and Meyarivan, "A fast and elitist
// multiobjective genetic algorithm: NSGA-II", IEEE TEVC 2002) with fast
// non-dominated sorting, crowding distance, binary tournament on (rank,
// crowding) and elitist (μ+λ) survival, all objectives minimised and
// constraints handled by Deb's constrained-domination rule (feasible beats
// infeasible, smaller violation beats larger, Pareto dominance among feasible).
// Genomes are []float64 with a per-variable Integer flag so one core serves both
// the integer architecture encodings of Neural Architecture Transfer (Lu et al.,
// "Neural Architecture Transfer", TPAMI 2021) and NSGANetV2 (Lu et al., ECCV
// 2020) — uniform or two-point crossover, per-gene reset mutation, a caller
// Repair hook and duplicate elimination — and real variables, which use
// simulated binary crossover and polynomial mutation (Deb and Agrawal 1995) and
// are checked on the ZDT problems (Zitzler, Deb and Thiele 2000). Helpers give
// the non-dominated subset, the exact 2-D hypervolume, IGD and a
// spread-out subset of a front (uniform arc length in normalised objective
// space, in the spirit of NSGANetV2's subset selection of candidates to train).
package nsga2
