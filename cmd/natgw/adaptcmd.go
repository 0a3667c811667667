package main

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



// adaptOptions are natgw adapt's settings, kept together so each phase reads them alike.
type adaptOptions struct {
	ckpt, data, out, work, name, description, dataset string

	iterations, epochs, batch, res, subnets int
	lr, wd, smoothing, kd                   float64
	elite                                   int
	uniform, cropScale                      float64

	evals, finalEvals, initial, perIter, carry, calib int
	seed                                              uint64
	half, latency                                     bool
	budgets                                           string
	ortThreads, workers                               int
	trainRes                                          []int // batch sizes drawn per step; nil: res only
	eliteRes                                          bool  // draw them from the elite's resolution genes
	seeds                                             []supernet.Arch
	top                                               *supernet.Arch // the sandwich's top subnet; nil: the largest
	topSizes                                          []int          // sizes the top also trains at every step
	topKD                                             bool           // the top at its largest size teaches the rest
	topKDWeight                                       float64        // weight of that teacher's own pass; 0 = 1
	average                                           int            // final weights: the mean of the last this many rounds' ends
}

// cmdAdapt runs NAT's adaptation: alternate a surrogate-assisted search on the current
// weights with fine-tuning on subnets drawn from the archive's best members, then search
// once more on the final weights and write a servable task folder. Every phase leaves
// files in --work from which a rerun continues.
func cmdAdapt(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "adapt")
	o := adaptOptions{}
	fs.StringVar(&o.ckpt, "supernet", "", "supernet to adapt (natgw native or OFA .pth); its classifier is re-initialised when the class count differs")
	fs.StringVar(&o.data, "data", "", "image-folder data set with train/ and val/ (test/ is never read)")
	fs.StringVar(&o.out, "out", "", "task folder to write (task.json, supernet, labels, archive, calib/)")
	fs.StringVar(&o.work, "work", "", "folder for resumable state: weights, archives and trainer state of every iteration (default: --out + \".work\")")
	fs.StringVar(&o.name, "name", "", "task name (default: the --out folder's name)")
	fs.StringVar(&o.description, "description", "", "task description for task.json")
	fs.StringVar(&o.dataset, "dataset", "", "data set name for task.json (default: the --data folder's name)")
	fs.IntVar(&o.iterations, "iterations", 2, "search + fine-tune rounds before the final search")
	fs.IntVar(&o.epochs, "epochs", 3, "fine-tuning epochs per iteration")
	fs.IntVar(&o.batch, "batch", 32, "images per training step")
	fs.IntVar(&o.res, "resolution", 128, "training resolution (subnets are measured at their own)")
	trainRes := fs.String("train-resolutions", "", `input sizes of the fine-tuning batches, one drawn per step for every subnet of it: "elite" (the resolution genes of the subnets drawn from, as NAT draws whole subnets from the archive) or a comma-separated list; empty: --resolution only`)
	fs.IntVar(&o.subnets, "subnets", 1, "archive-drawn subnets per step besides the largest and the smallest")
	fs.Float64Var(&o.lr, "lr", 0.001, "peak learning rate of each fine-tuning round")
	fs.Float64Var(&o.wd, "weight-decay", 4e-5, "weight decay (not on BatchNorm and bias tensors)")
	fs.Float64Var(&o.smoothing, "label-smoothing", 0.1, "label smoothing")
	fs.Float64Var(&o.kd, "kd-ratio", 1, "weight of the distillation loss from the largest subnet (or --top)")
	fs.Float64Var(&o.cropScale, "crop-scale", 0.5, "smallest area fraction of the random resized crop")
	fs.IntVar(&o.elite, "elite", 16, "archive members (front by front) whose genes the fine-tuning subnets are drawn from")
	fs.Float64Var(&o.uniform, "uniform", 0.1, "probability that a gene is drawn uniformly instead of from the elite")
	fs.IntVar(&o.evals, "evals", 24, "measured subnets per iteration's search (carried ones count)")
	fs.IntVar(&o.finalEvals, "final-evals", 48, "measured subnets of the final search, which the task serves")
	fs.IntVar(&o.initial, "initial", 8, "random sample of each search (smallest and largest included)")
	fs.IntVar(&o.perIter, "per-iter", 8, "subnets measured per surrogate iteration")
	top := fs.String("top", "", "the sandwich's top subnet instead of the largest (OFA arch JSON or @file): trained every step and the source of the others' soft targets; an imported network's own arch is the natural one")
	topSizes := fs.String("top-sizes", "", "comma-separated input sizes at which the top subnet (--top or the largest) also trains every step, on the batch resized, besides the batch's own size (e.g. every size it is served at); empty: the batch's only")
	fs.BoolVar(&o.topKD, "top-kd", false, "with --top-sizes: the top at its largest size teaches every other pass, the top at its smaller sizes included")
	fs.Float64Var(&o.topKDWeight, "top-kd-weight", 0, "with --top-kd: weight of the teaching pass's hard labels (1 + the kd ratio weighs it as each other pass; 0 = 1)")
	fs.IntVar(&o.average, "average", 0, "final weights = the mean of the last N rounds' end weights (weights-0, the start, is the warm-up's end; each fine-tuning round ends at lr 0 of its cosine), measured and served instead of the last round's alone; 0 or 1: the last alone")
	seedArchs := fs.String("seed-archs", "", `archs every search measures first, as a JSON array of OFA archs or @file.json (e.g. the pretrained network's own arch at a few resolutions): they join the archive, and so the fine-tuning elite, when they are good`)
	fs.IntVar(&o.carry, "carry", 8, "best members of the previous archive re-measured first on the new weights")
	fs.IntVar(&o.calib, "calib", 500, "BatchNorm calibration images from train (stored in the task for serving)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of sampling, data order, augmentation and search")
	fs.StringVar(&o.budgets, "budgets", "25M,50M,100M,150M,200M,300M,400M", "MAdds budgets pre-resolved on the final weights: the resolver's surrogate winners under each are measured, so that served answers are measurements (empty: none)")
	fs.BoolVar(&o.half, "half", true, "store float16 weights; the final search measures the rounded weights")
	fs.BoolVar(&o.latency, "latency", true, "measure onnxruntime batch-1 latency of the final archive (latency_ms budgets)")
	fs.IntVar(&o.ortThreads, "ort-threads", 2, "onnxruntime intra-op threads for --latency")
	fs.IntVar(&o.workers, "workers", 0, "image decoding goroutines (0: one per core)")
	if err := parse(fs, args, "supernet", "data", "out"); err != nil {
		return helpOK(err)
	}
	if *top != "" {
		a, err := supernet.ReadArchArg(*top)
		if err != nil {
			return usageError{"adapt: --top: " + err.Error()}
		}
		o.top = &a
	}
	if *topSizes != "" {
		var err error
		if o.topSizes, err = parseSizes(*topSizes); err != nil {
			return usageError{"adapt: --top-sizes: " + err.Error()}
		}
	}
	if o.topKD && len(o.topSizes) == 0 {
		// Checked here, not first by the trainer: a search runs before any training.
		return usageError{"adapt: --top-kd needs --top-sizes"}
	}
	if o.topKDWeight != 0 && !o.topKD || !(o.topKDWeight >= 0) {
		return usageError{"adapt: --top-kd-weight needs --top-kd and is not negative"}
	}
	if *seedArchs != "" {
		var err error
		if o.seeds, err = supernet.ReadArchListArg(*seedArchs); err != nil {
			return usageError{"adapt: --seed-archs: " + err.Error()}
		}
	}
	switch *trainRes {
	case "":
	case "elite":
		o.eliteRes = true
	default:
		var err error
		if o.trainRes, err = parseSizes(*trainRes); err != nil {
			return usageError{"adapt: --train-resolutions: " + err.Error()}
		}
	}
	if o.name == "" {
		o.name = filepath.Base(filepath.Clean(o.out))
	}
	if o.dataset == "" {
		o.dataset = filepath.Base(filepath.Clean(o.data))
	}
	if o.work == "" {
		o.work = filepath.Clean(o.out) + ".work"
	}
	switch {
	case !task.ValidName(o.name):
		return usageError{fmt.Sprintf("adapt: task name %q is not valid (lower-case letters, digits, - and _)", o.name)}
	case o.iterations < 0 || o.epochs < 1 || o.batch < 1 || o.res < 8 || o.subnets < 0 || o.elite < 1:
		return usageError{"adapt: --iterations ≥ 0; --epochs, --batch, --elite ≥ 1; --resolution ≥ 8; --subnets ≥ 0"}
	case o.average < 0 || o.average > o.iterations+1:
		return usageError{fmt.Sprintf("adapt: --average %d: between 0 and the rounds' count, --iterations + 1 = %d", o.average, o.iterations+1)}
	case o.evals < 4 || o.finalEvals < 4 || o.initial < 0 || o.perIter < 1 || o.carry < 0 || o.calib < 1:
		return usageError{"adapt: --evals and --final-evals ≥ 4, --per-iter and --calib ≥ 1, --initial and --carry ≥ 0"}
	case o.uniform < 0 || o.uniform > 1 || o.lr <= 0 || o.cropScale <= 0 || o.cropScale > 1:
		return usageError{"adapt: --uniform in [0, 1], --lr > 0, --crop-scale in (0, 1]"}
	}
	if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	a := &adapter{env: env, o: o, start: time.Now()}
	return a.run(ctx)
}

type adapter struct {
	env      *cli
	o        adaptOptions
	trainSet *dataset.Set
	tmpl     preprocess.Spec
	ort      *onnxrt.Env

	start                 time.Time
	searchDur, trainDur   []time.Duration
	searchLeft, trainLeft int
}

func (a *adapter) path(format string, k int) string {
	return filepath.Join(a.o.work, fmt.Sprintf(format, k))
}

func (a *adapter) run(ctx context.Context) error {
	var err error
	if a.trainSet, err = dataset.Open(a.o.data, "train"); err != nil {
		return err
	}
	w0 := a.path("weights-%d.safetensors", 0)
	if _, err := os.Stat(w0); errors.Is(err, fs.ErrNotExist) {
		sn, err := supernet.Load(a.o.ckpt, supernet.LoadOptions{})
		if err != nil {
			return err
		}
		if sn, err = trainer.WithClasses(sn, len(a.trainSet.Classes), a.o.seed, trainer.HeadStd); err != nil {
			return err
		}
		if err := a.saveWeights(sn, w0, "start", 0); err != nil {
			return err
		}
	}
	a.searchLeft, a.trainLeft = a.o.iterations+1, a.o.iterations
	for k := 0; ; k++ {
		w := a.path("weights-%d.safetensors", k)
		final := k == a.o.iterations
		if final && a.o.average > 1 {
			if w, err = a.averageWeights(k); err != nil {
				return err
			}
		}
		if final && a.o.half {
			// Served weights are float16: measure exactly those.
			hw := strings.TrimSuffix(w, ".safetensors") + "-half.safetensors"
			if _, err := os.Stat(hw); errors.Is(err, fs.ErrNotExist) {
				sn, err := supernet.Load(w, supernet.LoadOptions{})
				if err != nil {
					return err
				}
				if sn, err = roundHalf(sn); err != nil {
					return err
				}
				sn.StampVersion() // of the rounded tensors
				if err := sn.Save(hw, supernet.SaveOptions{Half: true}); err != nil {
					return err
				}
			}
			w = hw
		}
		sn, err := supernet.Load(w, supernet.LoadOptions{})
		if err != nil {
			return err
		}
		if a.o.top != nil {
			if err := sn.Spec.ValidateArch(*a.o.top); err != nil {
				return usageError{"adapt: --top: " + err.Error()}
			}
		}
		if a.tmpl, err = supernetPreprocess(sn, a.o.res); err != nil {
			return err
		}
		archive, err := a.search(ctx, k, sn, final)
		if err != nil {
			return err
		}
		if final {
			return a.writeTask(sn, archive)
		}
		if err := a.train(ctx, k, sn, archive); err != nil {
			return err
		}
	}
}

// averageWeights writes (once) the mean of rounds k-N+1 … k's end weights, N = --average,
// and returns its path. The name carries N, so a changed flag never reuses another mean.
func (a *adapter) averageWeights(k int) (string, error) {
	n := a.o.average
	path := a.path(fmt.Sprintf("weights-%%d-avg%d.safetensors", n), k)
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return path, err
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
	a.progress("iteration %d/%d: final weights: the mean of rounds %d to %d's end weights", k, a.o.iterations, k-n+1, k)
	return path, nil
}

// search measures iteration k's archive on sn: the previous iteration's best members
// first (their accuracy moved with the weights), then NAT's surrogate loop.
func (a *adapter) search(ctx context.Context, k int, sn *supernet.Supernet, final bool) (*task.Archive, error) {
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
	target := a.o.evals
	if final {
		target = a.o.finalEvals
	}
	a.progress("iteration %d/%d: search on %s, %d subnets (%d measured so far)", k, a.o.iterations, version, target, archive.Len())
	ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
		Supernet: sn, Data: a.o.data, Template: a.tmpl, CalibImages: a.o.calib,
		CalibSeed: a.o.seed, Archive: archive,
	})
	if err != nil {
		return nil, err
	}
	var measureLatency func(context.Context, supernet.Arch) (float64, error)
	if final && a.o.latency {
		if a.ort == nil {
			if a.ort, err = onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: a.o.ortThreads, InterOpThreads: 1}); err != nil {
				return nil, fmt.Errorf("--latency: %w", err)
			}
		}
		measureLatency = func(ctx context.Context, arch supernet.Arch) (float64, error) {
			sub, err := sn.Extract(arch)
			if err != nil {
				return 0, err
			}
			return specializer.MeasureLatency(ctx, a.ort, sub, specializer.LatencyOptions{})
		}
	}
	if k > 0 && a.o.carry > 0 {
		prev, err := task.LoadArchive(a.path("archive-%d.json", k-1), sn.Spec)
		if err != nil {
			return nil, err
		}
		for _, e := range specializer.Elite(prev.Snapshot(), a.o.carry) {
			if got, ok := archive.Lookup(e.Hash); ok && !got.Predicted {
				continue
			}
			m, err := ev.Evaluate(ctx, e.Arch)
			if err != nil {
				return nil, fmt.Errorf("re-measuring %s: %w", e.Hash, err)
			}
			if measureLatency != nil {
				if m.LatencyMS, err = measureLatency(ctx, e.Arch); err != nil {
					return nil, err
				}
			}
			m.Source = task.SourceCarried
			archive.Put(m)
			if err := archive.Save(path); err != nil {
				return nil, err
			}
			fmt.Fprintf(a.env.stderr, "adapt: carried %s: top-1 %.4f (was %.4f) at %.0fM MAdds\n", e.Hash[:12], m.Top1, e.Top1, float64(m.MAdds)/1e6)
		}
	}
	err = specializer.Search(ctx, specializer.Config{
		Evaluator: ev, Archive: archive, ArchivePath: path, Evals: max(target, archive.Len()),
		InitialSamples: a.o.initial, PerIteration: a.o.perIter, Seed: a.o.seed + uint64(k),
		MeasureLatency: measureLatency, Progress: a.env.stderr, Seeds: a.o.seeds,
	})
	if err != nil {
		return nil, err
	}
	if final && a.o.budgets != "" {
		if err := a.preResolve(ctx, sn, archive, ev, measureLatency, path); err != nil {
			return nil, err
		}
	}
	if err := archive.Save(path); err != nil {
		return nil, err
	}
	a.searchDur = append(a.searchDur, time.Since(t0))
	a.searchLeft--
	front := task.Front(archive.Snapshot())
	best := front[len(front)-1]
	a.progress("iteration %d/%d: search done: %d measured, front of %d, best top-1 %.4f at %.0fM MAdds",
		k, a.o.iterations, archive.Len(), len(front), best.Top1, float64(best.MAdds)/1e6)
	return archive, nil
}

// preResolve asks the gateway's resolver for each standard budget on the final archive and
// measures its surrogate winners (at most three rounds per budget), so that the answers
// a served task gives at those budgets are measured subnets, not predictions.
func (a *adapter) preResolve(ctx context.Context, sn *supernet.Supernet, archive *task.Archive, ev specializer.Evaluator,
	measureLatency func(context.Context, supernet.Arch) (float64, error), path string) error {
	r, err := specializer.NewResolver(specializer.ResolverConfig{
		Spec: sn.Spec, Archive: archive, ArchivePath: path, Evaluator: ev, MeasureLatency: measureLatency,
		SearchTime: 2 * time.Second, Seed: a.o.seed,
		Logger: slog.New(slog.NewTextHandler(a.env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer r.Close()
	searched := 0
	for _, s := range strings.Split(a.o.budgets, ",") {
		v, err := specializer.ParseCount(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--budgets %q: %w", s, err)
		}
		b := specializer.Budget{MAdds: v}
		for round := range 3 {
			ans, err := r.Resolve(ctx, b)
			var rangeErr *specializer.RangeError
			if errors.As(err, &rangeErr) {
				fmt.Fprintf(a.env.stderr, "adapt: budget %s: %v\n", s, err)
				break
			}
			if err != nil {
				return err
			}
			<-r.Settled(b)
			if ans, err = r.Resolve(ctx, b); err != nil {
				return err
			}
			// The search settled: a candidate it found was measured into the archive, and the
			// answer is what the task serves at this budget.
			e := ans.Entry
			fmt.Fprintf(a.env.stderr, "adapt: budget %s: round %d: measured %s, top-1 %.4f at %.0fM MAdds\n", s, round+1, e.Hash[:12], e.Top1, float64(e.MAdds)/1e6)
			if r.Searches() == searched {
				break
			}
			searched = r.Searches()
		}
	}
	return r.WaitIdle(ctx)
}

// train fine-tunes iteration k's weights on subnets drawn from its archive's elite and
// writes iteration k+1's weights.
func (a *adapter) train(ctx context.Context, k int, sn *supernet.Supernet, archive *task.Archive) error {
	next := a.path("weights-%d.safetensors", k+1)
	if _, err := os.Stat(next); err == nil {
		a.trainLeft--
		return nil
	}
	t0 := time.Now()
	sampler, err := specializer.NewArchiveSampler(sn.Spec, archive.Snapshot(), a.o.elite, a.o.uniform)
	if err != nil {
		return err
	}
	sizes := a.o.trainRes
	if a.o.eliteRes {
		sizes = sampler.Resolutions()
	}
	loader, err := dataset.NewLoader(dataset.Config{Set: a.trainSet, Spec: a.tmpl, Batch: a.o.batch, Shuffle: true,
		Seed: a.o.seed + uint64(k), Augment: &dataset.Augment{RandomResizedCrop: true, ScaleMin: a.o.cropScale, ScaleMax: 1, HFlip: true},
		Workers: a.o.workers, DropLast: true, CacheDecoded: true, Resolutions: sizes})
	if err != nil {
		return err
	}
	cfg := trainer.DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Epochs, cfg.Subnets = a.o.batch, a.o.res, a.o.epochs, a.o.subnets
	cfg.LR, cfg.WeightDecay, cfg.LabelSmoothing, cfg.KDRatio = a.o.lr, a.o.wd, a.o.smoothing, a.o.kd
	cfg.Seed, cfg.Sampler, cfg.Progress, cfg.Top = a.o.seed+uint64(k), sampler, a.env.stderr, a.o.top
	cfg.TopSizes, cfg.TopKD, cfg.TopKDWeight = a.o.topSizes, a.o.topKD, a.o.topKDWeight
	cfg.Checkpoint, cfg.CheckpointEvery = a.path("train-%d.state", k), 50
	cfg.WarmupSteps = loader.NumBatches() * a.o.epochs / 20
	tr, err := trainer.New(sn, cfg)
	if err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Checkpoint); err == nil {
		if err := tr.Resume(cfg.Checkpoint); err != nil {
			return err
		}
		a.progress("iteration %d/%d: fine-tuning resumed at step %d", k, a.o.iterations, tr.StepCount())
	}
	px := fmt.Sprint(a.o.res)
	if len(sizes) > 0 {
		px = sizeList(sizes)
	}
	also := ""
	if len(a.o.topSizes) > 0 {
		teach := ""
		if a.o.topKD {
			teach = ", the largest teaching"
			if w := a.o.topKDWeight; w != 0 && w != 1 {
				teach += fmt.Sprintf(" weighed %g", w)
			}
		}
		also = " (the top also at " + sizeList(a.o.topSizes) + " px" + teach + ")"
	}
	a.progress("iteration %d/%d: fine-tuning %d epochs at %s px%s on subnets drawn from the %d best", k, a.o.iterations, a.o.epochs, px, also, a.o.elite)
	res, err := tr.Fit(ctx, trainer.Data{Train: loader})
	if err != nil {
		return err
	}
	tr.Supernet().Meta["adapt_blas"] = cpu.BLAS()
	if err := a.saveWeights(tr.Supernet(), next, "natgw adapt", k+1); err != nil {
		return err
	}
	a.trainDur = append(a.trainDur, time.Since(t0))
	a.trainLeft--
	a.progress("iteration %d/%d: fine-tuned %d steps, loss %.4f → %.4f", k, a.o.iterations, res.StepsRun, res.FirstLoss, res.FinalLoss)
	return nil
}

// saveWeights stamps sn with a version derived from its tensors (archives and caches are
// keyed by it) and writes it.
func (a *adapter) saveWeights(sn *supernet.Supernet, path, by string, k int) error {
	labels, _ := json.Marshal(a.trainSet.Labels) // []string cannot fail
	sn.Meta["labels"] = string(labels)
	sn.Meta["adapted_by"] = by
	sn.Meta["adapt_iteration"] = fmt.Sprint(k)
	sn.Meta["adapt_data"] = filepath.Base(filepath.Clean(a.o.data))
	sn.StampVersion()
	return sn.Save(path, supernet.SaveOptions{})
}

// roundHalf returns sn with every tensor rounded to float16, as a half-precision file
// stores it, so that the version stamped on it is the stored tensors'.
func roundHalf(sn *supernet.Supernet) (*supernet.Supernet, error) {
	var buf bytes.Buffer
	if err := sn.Write(&buf, supernet.SaveOptions{Half: true}); err != nil {
		return nil, err
	}
	return supernet.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()), supernet.LoadOptions{})
}

// writeTask writes the servable task: the measured weights, labels, the final archive
// and the calibration images the archive was measured with (in the evaluator's order).
func (a *adapter) writeTask(sn *supernet.Supernet, archive *task.Archive) error {
	sn.Meta["task"] = a.o.name
	t := &task.Task{
		Manifest: task.Manifest{Name: a.o.name, Description: a.o.description, Dataset: a.o.dataset, Preprocess: a.tmpl},
		Supernet: sn, Labels: a.trainSet.Labels, Archive: archive,
	}
	// Calibration images first: archive.json, written last by task.Save, marks a whole task.
	calibDir := filepath.Join(a.o.out, task.CalibDir)
	if err := os.RemoveAll(calibDir); err != nil {
		return err
	}
	if err := os.MkdirAll(calibDir, 0o755); err != nil {
		return err
	}
	for i, it := range a.trainSet.Subset(a.o.calib, a.o.seed).Items {
		data, err := os.ReadFile(it.Path)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%04d-%s", i, filepath.Base(it.Path))
		if err := os.WriteFile(filepath.Join(calibDir, name), data, 0o644); err != nil {
			return err
		}
	}
	if err := task.Save(a.o.out, t, supernet.SaveOptions{Half: a.o.half}); err != nil {
		return err
	}
	// What serving needs besides: the val images (to measure new subnets as these were)
	// and the archive's BatchNorm statistics (to serve them with no forward pass).
	saved, err := task.Load(a.o.out)
	if err != nil {
		return err
	}
	if err := copyVal(saved, a.o.data); err != nil {
		return err
	}
	if _, err := saved.StoreStats(context.Background(), nil); err != nil {
		return err
	}
	front := task.Front(archive.Snapshot())
	a.progress("wrote task %q to %s: %d measured subnets, %d on the front, %d calibration images, their BatchNorm statistics", a.o.name, a.o.out, archive.Len(), len(front), a.o.calib)
	return nil
}

// progress prints one adapt line with the elapsed time and a rough ETA from the phases
// finished so far.
func (a *adapter) progress(format string, args ...any) {
	el := time.Since(a.start)
	eta := ""
	if len(a.searchDur) > 0 && (a.trainLeft == 0 || len(a.trainDur) > 0) {
		left := time.Duration(a.searchLeft) * mean(a.searchDur)
		if a.trainLeft > 0 {
			left += time.Duration(a.trainLeft) * mean(a.trainDur)
		}
		eta = fmt.Sprintf(", eta %s", left.Round(time.Second))
	}
	fmt.Fprintf(a.env.stderr, "adapt: "+format+" [elapsed %s%s]\n", append(args, el.Round(time.Second), eta)...)
}

func mean(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s / time.Duration(len(ds))
}
