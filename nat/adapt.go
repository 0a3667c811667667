package nat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/internal/cpu"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
	"github.com/natgw/natgw/trainer"
)

// Result is what an adaptation made.
type Result struct {
	Task    string       // the task folder written
	Archive []task.Entry // its archive
	Front   []task.Entry // the archive's accuracy/MAdds front
	Rounds  []Round      // one per round, the final search's last
}

// Round is one round of the adaptation: a search on its weights, then (but for the last)
// fine-tuning. A resumed run reports what it finds on disk; durations count this run only.
type Round struct {
	Index   int    `json:"round"`
	Weights string `json:"weights"` // the version the round searched
	// Measured is the round's archive size; Carried how many of the previous round's best
	// it measured again first.
	Measured int `json:"measured"`
	Carried  int `json:"carried"`
	// Best is the round's most accurate measured subnet.
	Best task.Entry `json:"best"`
	// Trained steps, and the loss of the first and last of them, when this run fine-tuned.
	Steps              int           `json:"steps,omitempty"`
	FirstLoss, EndLoss float64       `json:"-"`
	SearchTime         time.Duration `json:"search_ns"`
	TrainTime          time.Duration `json:"train_ns,omitempty"`
}

// Run adapts cfg.Supernet to cfg.Data by NAT's loop: each round searches the current
// weights with a surrogate-assisted NSGA-II (the previous round's best measured again
// first) and fine-tunes on subnets drawn from the archive's elite; the final round's
// search, on the weights served (averaged and rounded to float16 as configured), is the
// task's archive. Every step leaves files in cfg.Work from which a rerun continues, to
// the same result. It writes the task folder (task.json, supernet, labels, archive,
// calibration and val images, stored BatchNorm statistics) and returns what it made.
func Run(ctx context.Context, cfg Config, progress Progress) (Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(cfg.Work, 0o755); err != nil {
		return Result{}, err
	}
	a := &adapter{c: cfg, report: newReporter(progress, cfg.Iterations)}
	defer a.close()
	return a.run(ctx)
}

// adapter is one Run.
type adapter struct {
	c        Config
	report   *reporter
	trainSet *dataset.Set
	ort      *onnxrt.Env
	result   Result
}

func (a *adapter) close() {
	if a.ort != nil {
		a.ort.Close()
	}
}

func (a *adapter) path(format string, k int) string {
	return filepath.Join(a.c.Work, fmt.Sprintf(format, k))
}

func (a *adapter) run(ctx context.Context) (Result, error) {
	var err error
	if a.trainSet, err = dataset.Open(a.c.Data, "train"); err != nil {
		return Result{}, err
	}
	steps := a.c.Epochs * (len(a.trainSet.Items) / a.c.Batch)
	for k := range a.c.Iterations + 1 {
		if k < a.c.Iterations {
			a.report.plan(k, a.c.Evals, steps)
		} else {
			a.report.plan(k, a.c.FinalEvals, 0)
		}
	}
	w0 := a.path("weights-%d.safetensors", 0)
	if !exists(w0) {
		sn, err := supernet.Load(a.c.Supernet, supernet.LoadOptions{})
		if err != nil {
			return Result{}, err
		}
		if sn, err = trainer.WithClasses(sn, len(a.trainSet.Classes), a.c.Seed, trainer.HeadStd); err != nil {
			return Result{}, err
		}
		if err := a.saveWeights(sn, w0, "start", 0); err != nil {
			return Result{}, err
		}
	}
	for k := 0; ; k++ {
		final := k == a.c.Iterations
		w, err := a.roundWeights(k, final)
		if err != nil {
			return Result{}, err
		}
		sn, err := supernet.Load(w, supernet.LoadOptions{})
		if err != nil {
			return Result{}, err
		}
		if a.c.Top != nil {
			if err := sn.Spec.ValidateArch(*a.c.Top); err != nil {
				return Result{}, &ConfigError{fmt.Errorf("Top: %w", err)}
			}
		}
		tmpl, err := task.SupernetPreprocess(sn, a.c.Resolution)
		if err != nil {
			return Result{}, err
		}
		round := Round{Index: k, Weights: sn.Version()}
		archive, err := a.search(ctx, k, sn, tmpl, final, &round)
		if err != nil {
			return Result{}, err
		}
		if final {
			a.result.Rounds = append(a.result.Rounds, round)
			return a.writeTask(ctx, sn, tmpl, archive)
		}
		if err := a.train(ctx, k, sn, tmpl, archive, &round); err != nil {
			return Result{}, err
		}
		a.result.Rounds = append(a.result.Rounds, round)
	}
}

// roundWeights returns the path of round k's weights: the previous round's end, and for
// the final round the mean of the last rounds (Average) rounded to float16 (Half), each
// written once.
func (a *adapter) roundWeights(k int, final bool) (string, error) {
	w := a.path("weights-%d.safetensors", k)
	if final && a.c.Average > 1 {
		var err error
		if w, err = a.averageWeights(k); err != nil {
			return "", err
		}
	}
	if final && a.c.Half {
		// Served weights are float16: measure exactly those.
		hw := strings.TrimSuffix(w, ".safetensors") + "-half.safetensors"
		if !exists(hw) {
			sn, err := supernet.Load(w, supernet.LoadOptions{})
			if err != nil {
				return "", err
			}
			if sn, err = RoundHalf(sn); err != nil {
				return "", err
			}
			sn.StampVersion() // of the rounded tensors
			if err := sn.Save(hw, supernet.SaveOptions{Half: true}); err != nil {
				return "", err
			}
		}
		w = hw
	}
	return w, nil
}

// averageWeights writes (once) the mean of rounds k-N+1 … k's end weights, N = Average,
// and returns its path. The name carries N, so another setting never reuses another mean.
func (a *adapter) averageWeights(k int) (string, error) {
	n := a.c.Average
	path := a.path(fmt.Sprintf("weights-%%d-avg%d.safetensors", n), k)
	if exists(path) {
		return path, nil
	}
	sns := make([]*supernet.Supernet, 0, n)
	for i := k - n + 1; i <= k; i++ {
		sn, err := supernet.Load(a.path("weights-%d.safetensors", i), supernet.LoadOptions{})
		if err != nil {
			return "", err
		}
		sns = append(sns, sn)
	}
	avg, err := supernet.Average(sns...)
	if err != nil {
		return "", err
	}
	avg.Meta["averaged_rounds"] = fmt.Sprintf("%d-%d", k-n+1, k)
	if err := a.saveWeights(avg, path, "natgw adapt", k); err != nil {
		return "", err
	}
	a.report.note(StageAverage, k, fmt.Sprintf("final weights: the mean of rounds %d to %d's end weights", k-n+1, k))
	return path, nil
}

// search measures round k's archive on sn: the previous round's best members first (their
// accuracy moved with the weights), then NAT's surrogate loop; on the final weights also
// the pre-resolved budgets' candidates.
func (a *adapter) search(ctx context.Context, k int, sn *supernet.Supernet, tmpl preprocess.Spec, final bool, round *Round) (*task.Archive, error) {
	t0 := time.Now()
	path := a.path("archive-%d.json", k)
	archive, err := task.LoadArchive(path, sn.Spec)
	if err != nil {
		return nil, err
	}
	version := sn.Version()
	if archive.SupernetVersion != "" && archive.SupernetVersion != version {
		return nil, fmt.Errorf("%s was measured with supernet %q, not %q: remove it to measure again", path, archive.SupernetVersion, version)
	}
	archive.SupernetVersion = version
	target := a.c.Evals
	if final {
		target = a.c.FinalEvals
	}
	a.report.start(StageSearch, k, archive.Len(), target,
		fmt.Sprintf("search on %s, %d subnets (%d measured so far)", version, target, archive.Len()))
	ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
		Supernet: sn, Data: a.c.Data, Template: tmpl, CalibImages: a.c.CalibImages,
		CalibSeed: a.c.Seed, Archive: archive,
	})
	if err != nil {
		return nil, err
	}
	measureLatency, err := a.latencyMeter(sn, final)
	if err != nil {
		return nil, err
	}
	if k > 0 && a.c.Carry > 0 {
		if round.Carried, err = a.carry(ctx, k, sn, ev, archive, measureLatency, path); err != nil {
			return nil, err
		}
	}
	err = specializer.Search(ctx, specializer.Config{
		Evaluator: ev, Archive: archive, ArchivePath: path, Evals: max(target, archive.Len()),
		InitialSamples: a.c.Initial, PerIteration: a.c.PerIteration, Seed: a.c.Seed + uint64(k),
		MeasureLatency: measureLatency, Seeds: a.c.SeedArchs,
		OnMeasured: func(e task.Entry, measured, evals int) {
			a.report.step(StageSearch, k, measured, evals, fmt.Sprintf("measured %s (%s): top-1 %.4f at %.0fM MAdds, %d px",
				e.Hash[:12], e.Source, e.Top1, float64(e.MAdds)/1e6, e.Arch.R))
		},
	})
	if err != nil {
		return nil, err
	}
	if final && len(a.c.Budgets) > 0 {
		if err := a.preResolve(ctx, k, sn, archive, ev, measureLatency, path); err != nil {
			return nil, err
		}
	}
	if err := archive.Save(path); err != nil {
		return nil, err
	}
	front := task.Front(archive.Snapshot())
	round.Measured, round.Best, round.SearchTime = archive.Len(), front[len(front)-1], time.Since(t0)
	a.report.done(StageSearch, k, fmt.Sprintf("search done: %d measured, front of %d, best top-1 %.4f at %.0fM MAdds",
		archive.Len(), len(front), round.Best.Top1, float64(round.Best.MAdds)/1e6))
	return archive, nil
}

// latencyMeter returns the onnxruntime latency measurement of the final search when
// Latency is set, else nil.
func (a *adapter) latencyMeter(sn *supernet.Supernet, final bool) (func(context.Context, supernet.Arch) (float64, error), error) {
	if !final || !a.c.Latency {
		return nil, nil
	}
	if a.ort == nil {
		var err error
		if a.ort, err = onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: a.c.ORTThreads, InterOpThreads: 1}); err != nil {
			return nil, fmt.Errorf("Latency: %w", err)
		}
	}
	return func(ctx context.Context, arch supernet.Arch) (float64, error) {
		sub, err := sn.Extract(arch)
		if err != nil {
			return 0, err
		}
		return specializer.MeasureLatency(ctx, a.ort, sub, specializer.LatencyOptions{})
	}, nil
}

// carry measures round k-1's best members again on round k's weights, first.
func (a *adapter) carry(ctx context.Context, k int, sn *supernet.Supernet, ev specializer.Evaluator, archive *task.Archive,
	measureLatency func(context.Context, supernet.Arch) (float64, error), path string) (int, error) {
	prev, err := task.LoadArchive(a.path("archive-%d.json", k-1), sn.Spec)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range specializer.Elite(prev.Snapshot(), a.c.Carry) {
		n++
		if got, ok := archive.Lookup(e.Hash); ok && !got.Predicted {
			continue
		}
		m, err := ev.Evaluate(ctx, e.Arch)
		if err != nil {
			return n, fmt.Errorf("re-measuring %s: %w", e.Hash, err)
		}
		if measureLatency != nil {
			if m.LatencyMS, err = measureLatency(ctx, e.Arch); err != nil {
				return n, err
			}
		}
		m.Source = task.SourceCarried
		archive.Put(m)
		if err := archive.Save(path); err != nil {
			return n, err
		}
		a.report.note(StageSearch, k, fmt.Sprintf("carried %s: top-1 %.4f (was %.4f) at %.0fM MAdds", e.Hash[:12], m.Top1, e.Top1, float64(m.MAdds)/1e6))
	}
	return n, nil
}

// preResolve asks a task resolver for each pre-resolved budget on the final archive and
// lets its background search and measurement run (at most three rounds per budget), so
// that the answers a served task gives at those budgets are measured subnets.
func (a *adapter) preResolve(ctx context.Context, k int, sn *supernet.Supernet, archive *task.Archive, ev specializer.Evaluator,
	measureLatency func(context.Context, supernet.Arch) (float64, error), path string) error {
	r, err := specializer.NewResolver(specializer.ResolverConfig{
		Spec: sn.Spec, Archive: archive, ArchivePath: path, Evaluator: ev, MeasureLatency: measureLatency,
		SearchTime: 2 * time.Second, Seed: a.c.Seed,
		Logger: slog.New(slog.NewTextHandler(lineWriter(func(line string) { a.report.note(StageSearch, k, line) }), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer r.Close()
	searched := 0
	for _, v := range a.c.Budgets {
		b := specializer.Budget{MAdds: v}
		for range 3 {
			if _, err := r.Resolve(ctx, b); err != nil {
				var rangeErr *specializer.RangeError
				if errors.As(err, &rangeErr) {
					a.report.note(StageSearch, k, fmt.Sprintf("budget %dM: %v", v/1e6, err))
					break
				}
				return err
			}
			select {
			case <-r.Settled(b):
			case <-ctx.Done():
				return ctx.Err()
			}
			ans, err := r.Resolve(ctx, b)
			if err != nil {
				return err
			}
			// The search settled: a candidate it found was measured into the archive, and the
			// answer is what the task serves at this budget.
			a.report.note(StageSearch, k, fmt.Sprintf("budget %dM: %s, top-1 %.4f at %.0fM MAdds",
				v/1e6, ans.Entry.Hash[:12], ans.Entry.Top1, float64(ans.Entry.MAdds)/1e6))
			if r.Searches() == searched {
				break
			}
			searched = r.Searches()
		}
	}
	return r.WaitIdle(ctx)
}

// train fine-tunes round k's weights on subnets drawn from its archive's elite and writes
// round k+1's weights.
func (a *adapter) train(ctx context.Context, k int, sn *supernet.Supernet, tmpl preprocess.Spec, archive *task.Archive, round *Round) error {
	next := a.path("weights-%d.safetensors", k+1)
	if exists(next) {
		a.report.done(StageFineTune, k, "fine-tuned in an earlier run")
		return nil
	}
	t0 := time.Now()
	sampler, err := specializer.NewArchiveSampler(sn.Spec, archive.Snapshot(), a.c.Elite, a.c.Uniform)
	if err != nil {
		return err
	}
	sizes := a.c.TrainResolutions
	if a.c.EliteResolutions {
		sizes = sampler.Resolutions()
	}
	loader, err := dataset.NewLoader(dataset.Config{Set: a.trainSet, Spec: tmpl, Batch: a.c.Batch, Shuffle: true,
		Seed: a.c.Seed + uint64(k), Augment: &dataset.Augment{RandomResizedCrop: true, ScaleMin: a.c.CropScale, ScaleMax: 1, HFlip: true},
		Workers: a.c.Workers, DropLast: true, CacheDecoded: true, Resolutions: sizes})
	if err != nil {
		return err
	}
	cfg := trainer.DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Epochs, cfg.Subnets = a.c.Batch, a.c.Resolution, a.c.Epochs, a.c.Subnets
	cfg.LR, cfg.WeightDecay, cfg.LabelSmoothing, cfg.KDRatio = a.c.LR, a.c.WeightDecay, a.c.LabelSmoothing, a.c.KDRatio
	cfg.Seed, cfg.Sampler, cfg.Top = a.c.Seed+uint64(k), sampler, a.c.Top
	cfg.TopSizes, cfg.TopKD, cfg.TopKDWeight = a.c.TopSizes, a.c.TopKD, a.c.TopKDWeight
	cfg.Checkpoint, cfg.CheckpointEvery = a.path("train-%d.state", k), a.c.StateEvery
	cfg.WarmupSteps = loader.NumBatches() * a.c.Epochs / 20
	cfg.OnStep = func(step, total int, loss float64) {
		a.report.step(StageFineTune, k, step, total, fmt.Sprintf("step %d/%d loss %.4f", step, total, loss))
	}
	tr, err := trainer.New(sn, cfg)
	if err != nil {
		return err
	}
	if exists(cfg.Checkpoint) {
		if err := tr.Resume(cfg.Checkpoint); err != nil {
			return err
		}
		a.report.note(StageFineTune, k, fmt.Sprintf("fine-tuning resumed at step %d", tr.StepCount()))
	}
	a.report.start(StageFineTune, k, tr.StepCount(), loader.NumBatches()*a.c.Epochs, a.describeTraining(sizes))
	res, err := tr.Fit(ctx, trainer.Data{Train: loader})
	if err != nil {
		return err
	}
	tr.Supernet().Meta["adapt_blas"] = cpu.BLAS()
	if err := a.saveWeights(tr.Supernet(), next, "natgw adapt", k+1); err != nil {
		return err
	}
	round.Steps, round.FirstLoss, round.EndLoss, round.TrainTime = res.StepsRun, res.FirstLoss, res.FinalLoss, time.Since(t0)
	a.report.done(StageFineTune, k, fmt.Sprintf("fine-tuned %d steps, loss %.4f → %.4f", res.StepsRun, res.FirstLoss, res.FinalLoss))
	return nil
}

// describeTraining is the fine-tuning's line for people.
func (a *adapter) describeTraining(sizes []int) string {
	px := fmt.Sprint(a.c.Resolution)
	if len(sizes) > 0 {
		px = SizeList(sizes)
	}
	also := ""
	if len(a.c.TopSizes) > 0 {
		teach := ""
		if a.c.TopKD {
			teach = ", the largest teaching"
			if w := a.c.TopKDWeight; w != 0 && w != 1 {
				teach += fmt.Sprintf(" weighed %g", w)
			}
		}
		also = " (the top also at " + SizeList(a.c.TopSizes) + " px" + teach + ")"
	}
	return fmt.Sprintf("fine-tuning %d epochs at %s px%s on subnets drawn from the %d best", a.c.Epochs, px, also, a.c.Elite)
}

// saveWeights stamps sn with the digest of its tensors (archives and caches are keyed by
// it) and writes it.
func (a *adapter) saveWeights(sn *supernet.Supernet, path, by string, k int) error {
	labels, _ := json.Marshal(a.trainSet.Labels) // []string cannot fail
	sn.Meta["labels"] = string(labels)
	sn.Meta["adapted_by"] = by
	sn.Meta["adapt_iteration"] = fmt.Sprint(k)
	sn.Meta["adapt_data"] = filepath.Base(filepath.Clean(a.c.Data))
	sn.StampVersion()
	return sn.Save(path, supernet.SaveOptions{})
}

// RoundHalf returns sn with every tensor rounded to float16, as a half-precision file
// stores it, so that the version stamped on it is the stored tensors'.
func RoundHalf(sn *supernet.Supernet) (*supernet.Supernet, error) {
	var buf bytes.Buffer
	if err := sn.Write(&buf, supernet.SaveOptions{Half: true}); err != nil {
		return nil, err
	}
	return supernet.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), supernet.LoadOptions{})
}

// writeTask writes the servable task: the measured weights, labels, the final archive,
// the calibration images the archive was measured with (in the evaluator's order), the
// val images, and every subnet's BatchNorm statistics.
func (a *adapter) writeTask(ctx context.Context, sn *supernet.Supernet, tmpl preprocess.Spec, archive *task.Archive) (Result, error) {
	sn.Meta["task"] = a.c.Name
	t := &task.Task{
		Manifest: task.Manifest{Name: a.c.Name, Description: a.c.Description, Dataset: a.c.Dataset, Preprocess: tmpl},
		Supernet: sn, Labels: a.trainSet.Labels, Archive: archive,
	}
	// Calibration images first: archive.json, written last by task.Save, marks a whole task.
	calibDir := filepath.Join(a.c.Out, task.CalibDir)
	if err := os.RemoveAll(calibDir); err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(calibDir, 0o755); err != nil {
		return Result{}, err
	}
	for i, it := range a.trainSet.Subset(a.c.CalibImages, a.c.Seed).Items {
		data, err := os.ReadFile(it.Path)
		if err != nil {
			return Result{}, err
		}
		name := fmt.Sprintf("%04d-%s", i, filepath.Base(it.Path))
		if err := os.WriteFile(filepath.Join(calibDir, name), data, 0o644); err != nil {
			return Result{}, err
		}
	}
	if err := task.Save(a.c.Out, t, supernet.SaveOptions{Half: a.c.Half}); err != nil {
		return Result{}, err
	}
	// What serving needs besides: the val images (to measure new subnets as these were)
	// and the archive's BatchNorm statistics (to serve them with no forward pass).
	saved, err := task.Load(a.c.Out)
	if err != nil {
		return Result{}, err
	}
	if err := CopyVal(saved, a.c.Data); err != nil {
		return Result{}, err
	}
	a.report.start(StageWrite, a.c.Iterations, 0, archive.Len(), "storing every subnet's BatchNorm statistics")
	if _, err := saved.StoreStats(ctx, func(done, total int, e task.Entry) {
		a.report.step(StageWrite, a.c.Iterations, done, total, fmt.Sprintf("statistics of %s", e.Hash[:12]))
	}); err != nil {
		return Result{}, err
	}
	entries := archive.Snapshot()
	a.result.Task, a.result.Archive, a.result.Front = a.c.Out, entries, task.Front(entries)
	a.report.done(StageWrite, a.c.Iterations, fmt.Sprintf("wrote task %q to %s: %d measured subnets, %d on the front, %d calibration images",
		a.c.Name, a.c.Out, len(entries), len(a.result.Front), a.c.CalibImages))
	return a.result, nil
}

// CopyVal copies a data set's val split into a task folder, after checking that its
// classes are the task's, in the same order.
func CopyVal(t *task.Task, data string) error {
	set, err := dataset.Open(data, task.SplitVal)
	if err != nil {
		return err
	}
	if !slices.Equal(set.Labels, t.Labels) {
		return fmt.Errorf("%s: its %d classes are not the task's %d labels in the same order", data, len(set.Labels), len(t.Labels))
	}
	files := make([]task.ValFile, len(set.Items))
	for i, it := range set.Items {
		files[i] = task.ValFile{Path: it.Path, Label: it.Label}
	}
	return task.WriteVal(t.Dir, files)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
