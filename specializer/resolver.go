package specializer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/natgw/natgw/specializer/nsga2"
	"github.com/natgw/natgw/specializer/surrogate"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// SourceResolve marks archive entries measured because the resolver predicted them.
const SourceResolve = "resolve"

// ResolverConfig configures NewResolver. Zero values take the defaults given.
type ResolverConfig struct {
	Spec    *supernet.Spec // required
	Archive *task.Archive  // required: the measured subnets answers come from
	// ArchivePath, if set, is where the archive is saved after each background measurement.
	ArchivePath string
	// Evaluator measures predicted answers in the background; nil: predictions are never
	// measured (and stay in memory only).
	Evaluator Evaluator
	// MeasureLatency, if set, fills LatencyMS of background measurements.
	MeasureLatency func(ctx context.Context, arch supernet.Arch) (float64, error)
	// Latency predicts latency for searches under a latency bound; nil: budgets with a
	// latency bound are answered from measured entries only.
	Latency LatencyPredictor

	Surrogate  surrogate.Factory   // accuracy model fitted on the archive; nil: adaptive switching over Surrogates
	Surrogates []surrogate.Factory // candidates of adaptive switching (Kendall tau); default DefaultSurrogates(Seed)
	SearchTime time.Duration       // time limit of one surrogate search; default 200 ms
	Gap        float64             // search when every bound exceeds the answer's cost by more than this share; default 0.10
	PopSize    int                 // NSGA-II population; default 40
	Seed       uint64
	Queue      int          // background measurements waiting at most; default 16 (more are dropped)
	Logger     *slog.Logger // nil: slog.Default()
}

// Resolver answers budgets for one task: the most accurate measured subnet that fits, or,
// when every measured fit is far below the budget, the winner of a short constrained
// NSGA-II search on an accuracy surrogate — returned only if its predicted accuracy beats
// the measured fit, marked Predicted, and queued for measurement in the background (one
// worker, de-duplicated) so later requests get the measured entry.
//
// Monotonicity: an answer is the maximum of the accuracies of a candidate set that fits
// the budget — measured entries plus predictions found so far and not yet measured — and a
// larger budget admits a superset, so at any moment accuracy never drops as a budget
// grows; a search only adds candidates. (When a measurement replaces its prediction, the
// measured accuracy applies from then on.)
type Resolver struct {
	cfg  ResolverConfig
	log  *slog.Logger
	lo   supernet.Counts
	jobs chan task.Entry
	stop context.CancelFunc
	done chan struct{}

	mu        sync.Mutex
	pool      map[string]task.Entry // predicted answers awaiting measurement
	pending   map[string]bool       // queued or being measured
	searched  map[string]int        // budget key -> archive length at its last search
	model     surrogate.Model
	modelRows int // archive rows the model was fitted on
	searches  int
	idle      *sync.Cond
	busy      int // queued + running measurements
}

// NewResolver fits the surrogate on the archive and starts the background worker; Close
// stops it.
func NewResolver(cfg ResolverConfig) (*Resolver, error) {
	if cfg.Spec == nil || cfg.Archive == nil {
		return nil, errors.New("resolver: spec and archive are required")
	}
	if cfg.Surrogate == nil && len(cfg.Surrogates) == 0 {
		cfg.Surrogates = DefaultSurrogates(cfg.Seed)
	}
	if cfg.SearchTime == 0 {
		cfg.SearchTime = 200 * time.Millisecond
	}
	if cfg.Gap == 0 {
		cfg.Gap = 0.10
	}
	if cfg.PopSize == 0 {
		cfg.PopSize = 40
	}
	if cfg.Queue == 0 {
		cfg.Queue = 16
	}
	if cfg.SearchTime < 0 || cfg.Gap < 0 || cfg.PopSize < 2 || cfg.Queue < 1 {
		return nil, fmt.Errorf("resolver: search time %v, gap %v, population %d, queue %d out of range", cfg.SearchTime, cfg.Gap, cfg.PopSize, cfg.Queue)
	}
	r := &Resolver{cfg: cfg, log: cfg.Logger, jobs: make(chan task.Entry, cfg.Queue), done: make(chan struct{}),
		pool: map[string]task.Entry{}, pending: map[string]bool{}, searched: map[string]int{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.idle = sync.NewCond(&r.mu)
	r.lo, _ = CountArch(cfg.Spec, cfg.Spec.Smallest())
	if err := r.refit(); err != nil {
		r.log.Warn("resolver: no surrogate yet; answering from measured entries only", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go r.worker(ctx)
	return r, nil
}

// Close stops the background worker, abandoning queued measurements.
func (r *Resolver) Close() {
	r.stop()
	<-r.done
}

// Wait blocks until no background measurement is queued or running, or ctx ends.
func (r *Resolver) Wait(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.idle.Broadcast()
		r.mu.Unlock()
	})
	defer stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.busy > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.idle.Wait()
	}
	return nil
}

// Searches counts the surrogate searches run so far.
func (r *Resolver) Searches() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.searches
}

// refit fits the surrogate on the measured archive entries when they changed.
func (r *Resolver) refit() error {
	var X [][]float64
	var y []float64
	for _, e := range r.cfg.Archive.Snapshot() {
		if e.Predicted {
			continue
		}
		f, err := Features(r.cfg.Spec, e.Arch)
		if err != nil {
			return err
		}
		X, y = append(X, f), append(y, e.Top1)
	}
	r.mu.Lock()
	same := len(X) == r.modelRows && r.model != nil
	r.mu.Unlock()
	if same {
		return nil
	}
	if len(X) < 4 {
		return fmt.Errorf("%d measured entries, need at least 4", len(X))
	}
	var m surrogate.Model
	if r.cfg.Surrogate != nil {
		m = r.cfg.Surrogate()
		if err := m.Fit(X, y); err != nil {
			return fmt.Errorf("resolver: fit %s: %w", m.Name(), err)
		}
	} else {
		// Adaptive switching as the search does: a model that ranks held-out subnets well
		// also extrapolates less wildly than a fixed choice.
		var err error
		if m, _, err = surrogate.Select(context.Background(), r.cfg.Surrogates, X, y, max(2, min(5, len(X)/2)), r.cfg.Seed); err != nil {
			return fmt.Errorf("resolver: surrogate: %w", err)
		}
	}
	r.mu.Lock()
	r.model, r.modelRows = m, len(X)
	r.mu.Unlock()
	return nil
}

// Resolve answers a budget (see Resolver). Errors are ErrEmptyArchive or *RangeError from
// Best; a failed search is logged and the measured answer returned.
func (r *Resolver) Resolve(ctx context.Context, b Budget) (task.Entry, error) {
	entries := r.cfg.Archive.Snapshot()
	best, err := Best(entries, b)
	if err != nil {
		return task.Entry{}, err
	}
	r.mu.Lock()
	ans := best
	for _, p := range r.pool {
		// A prediction replaces a measurement only by claiming more, never on a tie.
		if b.Fits(p) && (p.Top1 > ans.Top1 || (ans.Predicted && better(p, ans))) {
			ans = p
		}
	}
	model := r.model
	key := b.Key()
	last, seen := r.searched[key]
	r.mu.Unlock()
	if model == nil || !r.farBelow(b, ans) || r.measuredNear(b, entries) || (seen && last == len(entries)) {
		return ans, nil
	}
	if b.LatencyMS > 0 && r.cfg.Latency == nil {
		return ans, nil
	}
	w, ok, err := r.search(ctx, b, model, entries)
	r.mu.Lock()
	r.searched[key] = len(entries)
	r.searches++
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("resolver: surrogate search failed", "budget", key, "err", err)
		return ans, nil
	}
	if !ok || w.Top1 <= ans.Top1 {
		return ans, nil
	}
	r.enqueue(w)
	return w, nil
}

// measuredNear reports whether a measured entry fits b without being far below it: the
// archive already covers the budget's neighbourhood (a search there, such as the
// adaptation's pre-resolution, measured its picks), so a surrogate search would only
// re-predict what was measured to be worse.
func (r *Resolver) measuredNear(b Budget, entries []task.Entry) bool {
	for _, e := range entries {
		if !e.Predicted && b.Fits(e) && !r.farBelow(b, e) {
			return true
		}
	}
	return false
}

// farBelow reports whether every bound of b exceeds e's cost by more than the gap.
func (r *Resolver) farBelow(b Budget, e task.Entry) bool {
	g := r.cfg.Gap
	if b.MAdds > 0 && float64(b.MAdds-e.MAdds) <= g*float64(b.MAdds) {
		return false
	}
	if b.Params > 0 && float64(b.Params-e.Params) <= g*float64(b.Params) {
		return false
	}
	if b.LatencyMS > 0 && b.LatencyMS-e.LatencyMS <= g*b.LatencyMS {
		return false
	}
	return !b.IsZero()
}

// search runs NSGA-II on the surrogate under b's bounds for at most SearchTime and
// returns the feasible unmeasured arch of highest predicted accuracy.
func (r *Resolver) search(ctx context.Context, b Budget, model surrogate.Model, entries []task.Entry) (task.Entry, bool, error) {
	spec := r.cfg.Spec
	measured := map[string]bool{}
	var initial [][]float64
	// A surrogate extrapolates freely (an RBF fit can predict 160 % top-1 far from its
	// data); no prediction may claim more than the best accuracy actually measured.
	ceiling := 0.0
	for _, e := range entries {
		if !e.Predicted {
			ceiling = max(ceiling, e.Top1)
		}
	}
	clamp := func(v float64) float64 {
		if math.IsNaN(v) {
			return 0
		}
		return min(max(v, 0), ceiling)
	}
	for _, e := range entries {
		if e.Predicted {
			continue
		}
		measured[e.Hash] = true
		if b.Fits(e) && len(initial) < r.cfg.PopSize/2 {
			g, err := genome(spec, e.Arch)
			if err == nil {
				initial = append(initial, g)
			}
		}
	}
	prob := nsga2.Problem{
		Vars:   genomeVars(spec),
		NumObj: 2,
		Repair: func(g []float64) { repairGenome(spec, g) },
		Evaluate: func(ctx context.Context, genomes [][]float64) ([][]float64, []float64, error) {
			objs, _, err := surrogateObjectives(spec, []Objective{ObjMAdds}, nil, model, genomes)
			if err != nil {
				return nil, nil, err
			}
			for _, o := range objs {
				o[0] = -clamp(-o[0])
			}
			cv := make([]float64, len(genomes))
			for i, g := range genomes {
				a, err := archOf(spec, g)
				if err != nil {
					return nil, nil, err
				}
				cv[i] = r.violation(b, a, objs[i][1])
			}
			return objs, cv, nil
		},
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.SearchTime)
	defer cancel()
	seed := splitmix64(r.cfg.Seed ^ uint64(len(entries)) ^ uint64(b.MAdds) ^ uint64(b.Params) ^ math.Float64bits(b.LatencyMS))
	res, err := nsga2.Run(sctx, prob, nsga2.Config{PopSize: r.cfg.PopSize, Generations: 1 << 20, Seed: seed, Initial: initial})
	if err != nil && (ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) || len(res.Population) == 0) {
		return task.Entry{}, false, err
	}
	var win task.Entry
	found := false
	for _, ind := range res.Population {
		if !ind.Feasible() {
			continue
		}
		a, err := archOf(spec, ind.Genome)
		if err != nil || measured[a.Hash()] {
			continue
		}
		cnt, err := CountArch(spec, a)
		if err != nil {
			continue
		}
		e := task.Entry{Arch: a, Hash: a.Hash(), MAdds: cnt.MAdds, Params: cnt.Params, Top1: clamp(-ind.Objs[0]),
			Split: task.SplitVal, Predicted: true, Source: SourceResolve}
		if b.LatencyMS > 0 {
			e.LatencyMS = r.cfg.Latency.PredictMS(a)
		}
		if b.Fits(e) && (!found || better(e, win)) {
			win, found = e, true
		}
	}
	return win, found, nil
}

// violation is the summed relative excess of a over b's bounds (0 = fits).
func (r *Resolver) violation(b Budget, a supernet.Arch, madds float64) float64 {
	v := 0.0
	if b.MAdds > 0 {
		v += math.Max(0, madds/float64(b.MAdds)-1)
	}
	if b.Params > 0 || b.LatencyMS > 0 {
		cnt, err := CountArch(r.cfg.Spec, a)
		if err != nil {
			return math.Inf(1)
		}
		if b.Params > 0 {
			v += math.Max(0, float64(cnt.Params)/float64(b.Params)-1)
		}
		if b.LatencyMS > 0 {
			l := r.cfg.Latency.PredictMS(a)
			if math.IsNaN(l) {
				return math.Inf(1)
			}
			v += math.Max(0, l/b.LatencyMS-1)
		}
	}
	return v
}

// enqueue pools a predicted answer and queues its measurement once.
func (r *Resolver) enqueue(e task.Entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pool[e.Hash] = e
	if r.cfg.Evaluator == nil || r.pending[e.Hash] {
		return
	}
	select {
	case r.jobs <- e:
		r.pending[e.Hash] = true
		r.busy++
	default: // queue full: a later request queues it again
	}
}

func (r *Resolver) worker(ctx context.Context) {
	defer close(r.done)
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-r.jobs:
			err := r.measure(ctx, e)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("resolver: background measurement failed", "hash", e.Hash, "err", err)
			}
			r.mu.Lock()
			delete(r.pending, e.Hash)
			delete(r.pool, e.Hash) // measured, or unmeasurable: stop serving the prediction
			r.busy--
			r.idle.Broadcast()
			r.mu.Unlock()
		}
	}
}

func (r *Resolver) measure(ctx context.Context, p task.Entry) error {
	e, err := r.cfg.Evaluator.Evaluate(ctx, p.Arch)
	if err != nil {
		return err
	}
	if r.cfg.MeasureLatency != nil {
		if e.LatencyMS, err = r.cfg.MeasureLatency(ctx, e.Arch); err != nil {
			return err
		}
	}
	e.Source, e.Predicted = SourceResolve, false
	r.cfg.Archive.Put(e)
	if r.cfg.ArchivePath != "" {
		if err := r.cfg.Archive.Save(r.cfg.ArchivePath); err != nil {
			return fmt.Errorf("save archive: %w", err)
		}
	}
	return r.refit()
}
