package specializer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/natgw/natgw/specializer/nsga2"
	"github.com/natgw/natgw/specializer/surrogate"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// Objective is a cost the search minimises next to maximising accuracy.
type Objective string

// Costs the search can trade against accuracy.
const (
	ObjMAdds   Objective = "madds"
	ObjParams  Objective = "params"
	ObjLatency Objective = "latency" // needs Config.Latency
)

// LatencyPredictor predicts a subnet's latency in milliseconds (NaN for an invalid arch).
type LatencyPredictor interface {
	PredictMS(arch supernet.Arch) float64
}

// Config configures Search. Zero values take the defaults given per field.
type Config struct {
	Evaluator Evaluator     // required
	Archive   *task.Archive // required; holds earlier measurements when resuming
	// ArchivePath, if set, is where the archive is saved atomically after every
	// measurement, so a killed search loses at most the measurement in progress.
	ArchivePath string

	Evals          int // total true evaluations, counting those already in the archive; required
	InitialSamples int // default min(100, Evals/2), at least 4 (surrogates need rows)
	// Seeds are measured first, before the initial sample, and count toward Evals: known
	// good archs, such as the network the pretrained weights came from at a few
	// resolutions, that the search then explores around. A random sample of a space this
	// large almost never lands near them.
	Seeds        []supernet.Arch
	PerIteration int    // candidates measured per iteration; default 8
	Seed         uint64 // every random choice derives from (Seed, iteration)

	// Objectives are the costs beside accuracy; default {ObjMAdds}. Candidates are spread
	// along the first cost.
	Objectives []Objective
	Latency    LatencyPredictor // for ObjLatency
	// MeasureLatency, if set, fills Entry.LatencyMS of every measured subnet.
	MeasureLatency func(ctx context.Context, arch supernet.Arch) (float64, error)

	Surrogates  []surrogate.Factory // candidates of adaptive switching; default DefaultSurrogates(Seed)
	Folds       int                 // cross-validation folds; default 5 (fewer for few rows)
	PopSize     int                 // NSGA-II population on the surrogate; default 100
	Generations int                 // NSGA-II generations per iteration; default 50

	Progress io.Writer // progress lines; nil: none
	// OnMeasured, if set, is called after every measurement with the entry, the archive's
	// measured count and Evals.
	OnMeasured func(e task.Entry, measured, evals int)
}

// DefaultSurrogates are NAT's adaptive-switching candidates: an RBF ensemble, a Matérn GP,
// an MLP and a random forest, all seeded.
func DefaultSurrogates(seed uint64) []surrogate.Factory {
	return []surrogate.Factory{
		func() surrogate.Model { return surrogate.NewRBFEnsemble(20, seed) },
		func() surrogate.Model { return surrogate.NewGP(surrogate.Matern52) },
		func() surrogate.Model { return surrogate.NewMLP(seed) },
		func() surrogate.Model { return surrogate.NewForest(seed) },
	}
}

func (c Config) withDefaults() (Config, error) {
	if c.Evaluator == nil {
		return c, errors.New("search: no evaluator")
	}
	if c.Archive == nil {
		return c, errors.New("search: no archive (use an empty one for a fresh search)")
	}
	if c.Evals < 2 {
		return c, fmt.Errorf("search: %d evaluations, need at least 2", c.Evals)
	}
	if c.InitialSamples == 0 {
		c.InitialSamples = min(100, c.Evals/2)
	}
	c.InitialSamples = min(max(4, c.InitialSamples), c.Evals)
	if c.PerIteration == 0 {
		c.PerIteration = 8
	}
	if c.PerIteration < 1 {
		return c, fmt.Errorf("search: %d candidates per iteration", c.PerIteration)
	}
	if len(c.Objectives) == 0 {
		c.Objectives = []Objective{ObjMAdds}
	}
	for _, o := range c.Objectives {
		switch o {
		case ObjMAdds, ObjParams:
		case ObjLatency:
			if c.Latency == nil {
				return c, errors.New("search: latency objective without a latency predictor")
			}
		default:
			return c, fmt.Errorf("search: unknown objective %q", o)
		}
	}
	if len(c.Surrogates) == 0 {
		c.Surrogates = DefaultSurrogates(c.Seed)
	}
	if c.Folds == 0 {
		c.Folds = 5
	}
	if c.PopSize == 0 {
		c.PopSize = 100
	}
	if c.Generations == 0 {
		c.Generations = 50
	}
	if c.Folds < 2 || c.PopSize < 2 || c.Generations < 1 {
		return c, fmt.Errorf("search: folds %d, population %d, generations %d out of range", c.Folds, c.PopSize, c.Generations)
	}
	return c, nil
}

// iterSeed derives the seed of one iteration (0 = the initial sample) from the search
// seed alone, so a resumed search draws exactly what an uninterrupted one would.
func iterSeed(seed uint64, it int) uint64 {
	return splitmix64(seed ^ splitmix64(uint64(it)+0x4e4154))
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// InitialSample is the search's first batch: the smallest and the largest subnet, then
// distinct uniform-random archs, n in all (fewer only if the space is smaller).
func InitialSample(spec *supernet.Spec, n int, seed uint64) []supernet.Arch {
	rng := rand.New(rand.NewPCG(iterSeed(seed, 0), 0x696e6974))
	seen := map[string]bool{}
	var out []supernet.Arch
	add := func(a supernet.Arch) {
		if h := a.Hash(); !seen[h] && len(out) < n {
			seen[h] = true
			out = append(out, a)
		}
	}
	add(spec.Smallest())
	add(spec.Largest())
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		add(RandomArch(spec, rng))
	}
	return out
}

// Search runs Neural Architecture Transfer's search loop (Lu et al., TPAMI 2021): measure
// an initial sample, then per iteration fit accuracy surrogates with adaptive switching
// (surrogate.Select, Kendall tau), run NSGA-II on the surrogate over the integer
// encoding, and measure PerIteration new candidates spread along the predicted front, until
// the archive holds Evals measured subnets. Every measurement is appended to the archive
// (Source and Iteration set) and saved at once. A rerun on the saved archive continues
// where the last one stopped and ends with the same archive as an uninterrupted run:
// iteration i fits on the entries measured before it and draws from (Seed, i) only.
func Search(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	s := &searcher{cfg: cfg, spec: cfg.Evaluator.Spec(), start: time.Now()}
	s.lo, _ = CountArch(s.spec, s.spec.Smallest())
	s.hi, _ = CountArch(s.spec, s.spec.Largest())
	s.measured = countMeasured(cfg.Archive.Snapshot())
	s.startCount = s.measured
	if s.measured >= cfg.Evals {
		s.report(0, nil, nil)
		return nil
	}
	for _, a := range cfg.Seeds {
		if s.measured >= cfg.Evals {
			break
		}
		if err := s.measure(ctx, a, task.SourceSeed, 0); err != nil {
			return fmt.Errorf("seed %s: %w", a.JSON(), err)
		}
	}
	for _, a := range InitialSample(s.spec, cfg.InitialSamples, cfg.Seed) {
		if s.measured >= cfg.Evals {
			break
		}
		if err := s.measure(ctx, a, task.SourceInitial, 0); err != nil {
			return err
		}
	}
	s.report(0, nil, nil)
	it := max(1, lastIteration(cfg.Archive.Snapshot()))
	stale := 0
	for ; s.measured < cfg.Evals; it++ {
		before := s.measured
		if err := s.iteration(ctx, it); err != nil {
			return err
		}
		if s.measured == before {
			if stale++; stale >= 3 {
				return fmt.Errorf("search: no new subnet in 3 iterations; the space holds no unmeasured candidate")
			}
		} else {
			stale = 0
		}
	}
	return nil
}

type searcher struct {
	cfg                  Config
	spec                 *supernet.Spec
	lo, hi               supernet.Counts
	measured, startCount int
	start                time.Time
}

func countMeasured(es []task.Entry) int {
	n := 0
	for _, e := range es {
		if !e.Predicted {
			n++
		}
	}
	return n
}

func lastIteration(es []task.Entry) int {
	it := 0
	for _, e := range es {
		if e.Source == task.SourceSearch {
			it = max(it, e.Iteration)
		}
	}
	return it
}

// measure evaluates a unless the archive has it, then appends and saves.
func (s *searcher) measure(ctx context.Context, a supernet.Arch, source task.Source, it int) error {
	c, err := s.spec.Canonical(a)
	if err != nil {
		return fmt.Errorf("search: %w", err)
	}
	if e, ok := s.cfg.Archive.Lookup(c.Hash()); ok && !e.Predicted {
		return nil
	}
	e, err := s.cfg.Evaluator.Evaluate(ctx, c)
	if err != nil {
		return fmt.Errorf("search: evaluate: %w", err)
	}
	if s.cfg.MeasureLatency != nil {
		if e.LatencyMS, err = s.cfg.MeasureLatency(ctx, c); err != nil {
			return fmt.Errorf("search: latency: %w", err)
		}
	}
	e.Source, e.Iteration = source, it
	s.cfg.Archive.Put(e)
	s.measured++
	if s.cfg.ArchivePath != "" {
		if err := s.cfg.Archive.Save(s.cfg.ArchivePath); err != nil {
			return fmt.Errorf("search: save archive: %w", err)
		}
	}
	if s.cfg.OnMeasured != nil {
		s.cfg.OnMeasured(e, s.measured, s.cfg.Evals)
	}
	if it == 0 {
		// Seeds and the initial sample report nothing else until all are measured, which
		// takes minutes on real data; iterations report once each.
		s.reportMeasured(e)
	}
	return nil
}

// reportMeasured writes one progress line for a measurement outside the iterations.
func (s *searcher) reportMeasured(e task.Entry) {
	w := s.cfg.Progress
	if w == nil {
		return
	}
	fmt.Fprintf(w, "search: measured %d/%d (%s)  top1 %.4f @ %.1fM, %d px%s\n", s.measured, s.cfg.Evals, e.Source,
		e.Top1, float64(e.MAdds)/1e6, e.Arch.R, s.eta())
}

// eta is "  eta D" at this run's pace so far, or "" before its first measurement and after
// its last.
func (s *searcher) eta() string {
	done := s.measured - s.startCount
	if done <= 0 || s.measured >= s.cfg.Evals {
		return ""
	}
	per := time.Since(s.start) / time.Duration(done)
	return fmt.Sprintf("  eta %s", (per * time.Duration(s.cfg.Evals-s.measured)).Round(time.Second))
}

// costs returns the configured cost objectives of a.
func (s *searcher) costs(a supernet.Arch) ([]float64, error) {
	return objectiveCosts(s.spec, s.cfg.Objectives, s.cfg.Latency, a)
}

func objectiveCosts(spec *supernet.Spec, objs []Objective, lat LatencyPredictor, a supernet.Arch) ([]float64, error) {
	c, err := CountArch(spec, a)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(objs))
	for i, o := range objs {
		switch o {
		case ObjMAdds:
			out[i] = float64(c.MAdds)
		case ObjParams:
			out[i] = float64(c.Params)
		case ObjLatency:
			out[i] = lat.PredictMS(a)
		}
	}
	return out, nil
}

// iteration runs one NAT iteration: fit, search the surrogate, measure.
func (s *searcher) iteration(ctx context.Context, it int) error {
	var train []task.Entry
	for _, e := range s.cfg.Archive.Snapshot() {
		if !e.Predicted && !(e.Source == task.SourceSearch && e.Iteration >= it) {
			train = append(train, e)
		}
	}
	seed := iterSeed(s.cfg.Seed, it)
	X := make([][]float64, len(train))
	y := make([]float64, len(train))
	inTrain := map[string]bool{}
	for i, e := range train {
		f, err := Features(s.spec, e.Arch)
		if err != nil {
			return fmt.Errorf("search: archive entry %s: %w", e.Hash, err)
		}
		X[i], y[i] = f, e.Top1
		inTrain[e.Hash] = true
	}
	folds := min(s.cfg.Folds, len(train)/2)
	model, rep, err := surrogate.Select(ctx, s.cfg.Surrogates, X, y, max(folds, 2), seed)
	if err != nil {
		return fmt.Errorf("search: iteration %d: surrogate: %w", it, err)
	}
	cands, err := s.candidates(ctx, it, seed, model, train, inTrain)
	if err != nil {
		return err
	}
	for _, a := range cands {
		if s.measured >= s.cfg.Evals {
			break
		}
		if err := s.measure(ctx, a, task.SourceSearch, it); err != nil {
			return err
		}
	}
	s.report(it, model, &rep)
	return nil
}

// candidates runs NSGA-II on the surrogate and picks PerIteration unmeasured archs spread
// along the predicted front, topping up from the rest of the population and then with
// random archs.
func (s *searcher) candidates(ctx context.Context, it int, seed uint64, model surrogate.Model, train []task.Entry, inTrain map[string]bool) ([]supernet.Arch, error) {
	nobj := 1 + len(s.cfg.Objectives)
	prob := nsga2.Problem{
		Vars:   genomeVars(s.spec),
		NumObj: nobj,
		Repair: func(g []float64) { repairGenome(s.spec, g) },
		Evaluate: func(ctx context.Context, genomes [][]float64) ([][]float64, []float64, error) {
			return surrogateObjectives(s.spec, s.cfg.Objectives, s.cfg.Latency, model, genomes)
		},
	}
	// Seed NSGA-II with the measured front, as NAT does.
	pts := make([][]float64, len(train))
	for i, e := range train {
		c, err := s.costs(e.Arch)
		if err != nil {
			return nil, err
		}
		pts[i] = append([]float64{-e.Top1}, c...)
	}
	var initial [][]float64
	for _, i := range nsga2.NonDominated(pts) {
		g, err := genome(s.spec, train[i].Arch)
		if err != nil {
			return nil, err
		}
		initial = append(initial, g)
	}
	res, err := nsga2.Run(ctx, prob, nsga2.Config{PopSize: s.cfg.PopSize, Generations: s.cfg.Generations, Seed: seed, Initial: initial})
	if err != nil {
		return nil, fmt.Errorf("search: iteration %d: nsga2: %w", it, err)
	}
	var fresh []nsga2.Individual // population order: rank, then crowding
	for _, ind := range res.Population {
		a, err := archOf(s.spec, ind.Genome)
		if err != nil {
			return nil, fmt.Errorf("search: nsga2 produced an invalid genome: %w", err)
		}
		if !inTrain[a.Hash()] {
			fresh = append(fresh, ind)
		}
	}
	var front [][]float64
	var frontIdx []int
	for i, ind := range fresh {
		if ind.Rank == 0 {
			front = append(front, ind.Objs)
			frontIdx = append(frontIdx, i)
		}
	}
	k := s.cfg.PerIteration
	chosen := map[int]bool{}
	var out []supernet.Arch
	for _, p := range nsga2.PickSpread(front, k) {
		chosen[frontIdx[p]] = true
	}
	for i := range fresh { // keep population order for the top-up
		if len(chosen) >= k {
			break
		}
		chosen[i] = true
	}
	for i, ind := range fresh {
		if chosen[i] {
			a, _ := archOf(s.spec, ind.Genome)
			out = append(out, a)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x746f7075))
	seen := map[string]bool{}
	for _, a := range out {
		seen[a.Hash()] = true
	}
	for tries := 0; len(out) < k && tries < 100*k; tries++ {
		a := RandomArch(s.spec, rng)
		if h := a.Hash(); !inTrain[h] && !seen[h] {
			seen[h] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// surrogateObjectives scores genomes: predicted error (−accuracy) and the costs.
func surrogateObjectives(spec *supernet.Spec, objs []Objective, lat LatencyPredictor, model surrogate.Model, genomes [][]float64) ([][]float64, []float64, error) {
	X := make([][]float64, len(genomes))
	costs := make([][]float64, len(genomes))
	for i, g := range genomes {
		a, err := archOf(spec, g)
		if err != nil {
			return nil, nil, err
		}
		if X[i], err = Features(spec, a); err != nil {
			return nil, nil, err
		}
		if costs[i], err = objectiveCosts(spec, objs, lat, a); err != nil {
			return nil, nil, err
		}
	}
	pred := model.Predict(X)
	out := make([][]float64, len(genomes))
	for i := range genomes {
		p := pred[i]
		if math.IsNaN(p) || math.IsInf(p, 0) {
			p = 0 // an unusable prediction ranks last
		}
		out[i] = append([]float64{-p}, costs[i]...)
	}
	return out, nil, nil
}

// Hypervolume is the area that the measured entries dominate in the plane of top-1 error
// (1 − Top1, in [0, 1]) and MAdds normalised to [0, 1] over [lo, hi], with the reference
// point (1, 1.05): 0 for nothing useful, about 1 for a perfect, free classifier.
func Hypervolume(entries []task.Entry, lo, hi int64) float64 {
	span := float64(max(hi-lo, 1))
	var pts [][]float64
	for _, e := range entries {
		if !e.Predicted {
			pts = append(pts, []float64{1 - e.Top1, float64(e.MAdds-lo) / span})
		}
	}
	return nsga2.Hypervolume2D(pts, []float64{1, 1.05})
}

// report writes one progress line.
func (s *searcher) report(it int, model surrogate.Model, rep *surrogate.Report) {
	w := s.cfg.Progress
	if w == nil {
		return
	}
	es := s.cfg.Archive.Snapshot()
	front := task.Front(es)
	var b strings.Builder
	if it == 0 {
		fmt.Fprintf(&b, "search: initial sample")
	} else {
		fmt.Fprintf(&b, "search: iteration %d", it)
	}
	fmt.Fprintf(&b, "  archive %d/%d  hv %.4f  front %d", s.measured, s.cfg.Evals, Hypervolume(es, s.lo.MAdds, s.hi.MAdds), len(front))
	if len(front) > 0 {
		fmt.Fprintf(&b, " (top1 %.4f @ %.1fM .. %.4f @ %.1fM)", front[0].Top1, float64(front[0].MAdds)/1e6,
			front[len(front)-1].Top1, float64(front[len(front)-1].MAdds)/1e6)
	}
	if rep != nil && rep.Best >= 0 {
		sc := rep.Scores[rep.Best]
		fmt.Fprintf(&b, "  surrogate %s tau %.3f±%.3f", sc.Name, sc.Mean, sc.Std)
	}
	b.WriteString(s.eta())
	fmt.Fprintln(w, b.String())
}
