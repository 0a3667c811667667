package specializer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/internal/scores"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// Evaluator measures subnets: the search and the resolver only ever see accuracies
// through it.
type Evaluator interface {
	// Spec is the search space the evaluator measures.
	Spec() *supernet.Spec
	// Evaluate returns the canonical arch's entry: hash, MAdds, params and the top-1
	// accuracy on the validation split (Split = task.SplitVal). Source and Iteration are
	// left for the caller.
	Evaluate(ctx context.Context, arch supernet.Arch) (task.Entry, error)
}

// Data splits the evaluator may open. Anything else, above all the test split, is refused:
// selection must never see test images, so the code cannot reach them.
const (
	SplitTrain = "train"
	SplitVal   = task.SplitVal
)

// ErrSplitRefused is returned for a split other than train or val.
var ErrSplitRefused = errors.New("split refused: the evaluator only opens train and val")

// openSplit is the evaluator's only way to open data.
func openSplit(root, split string) (*dataset.Set, error) {
	if split != SplitTrain && split != SplitVal {
		return nil, fmt.Errorf("%w (asked for %q)", ErrSplitRefused, split)
	}
	return dataset.Open(root, split)
}

// Forwarder runs an eval forward pass: x is [n,3,h,w], the result [n,Classes()] logits.
// supernet.Net is one.
type Forwarder interface {
	Forward(ctx context.Context, x []float32, n, h, w int) ([]float32, error)
	Classes() int
}

// ForwardMaker makes the Forwarder that measures sub, and the func that releases it.
type ForwardMaker func(ctx context.Context, sub *supernet.Subnet) (Forwarder, func(), error)

// EvalConfig configures NewSubnetEvaluator. Zero values take the defaults given.
type EvalConfig struct {
	Supernet *supernet.Supernet
	Data     string          // image-folder root with train/ and val/ (see package dataset)
	Template preprocess.Spec // eval preprocessing; Resolution is replaced by each subnet's
	// Crops overrides Template's crop fraction at the resolutions it names (a task's
	// crop_by_resolution), so that subnets are measured as they are served.
	Crops map[int]float64

	CalibImages int    // BatchNorm calibration images drawn from CalibSplit; default 500
	CalibBatch  int    // calibration batch size; default task.CalibBatch, which serving uses
	CalibSeed   uint64 // seed of the calibration subset; the same seed gives the same images
	CalibSplit  string // "train" (default) or "val"; any other split is refused
	EvalBatch   int    // forward batch size on val; default 100
	// MaxTensorBytes bounds the preprocessed tensors kept across resolutions (least
	// recently used resolution evicted first); default 512 MiB. A resolution whose tensors
	// alone exceed it is preprocessed batch by batch instead, never kept. The decoded images
	// are always kept.
	MaxTensorBytes int64

	// Calib, when set, are the calibration images themselves (a task's stored ones, in
	// their order) instead of a sample of Data's CalibSplit; CalibImages then takes that many
	// of them, evenly spaced (task.CalibSample; 0: all).
	Calib []*preprocess.RGB
	// Val, when set, are the labelled validation images themselves (a task's stored ones)
	// instead of Data's val split. With Calib and Val set, Data is not read.
	Val []task.LabeledImage
	// Workers bounds the cores one measurement uses; default all.
	Workers int
	// Forward, if set, makes the forward pass a subnet's val top-1 is measured with, once
	// its BatchNorm statistics are rebuilt, and a func that releases it. Nil: natgw's Go
	// forward (supernet.Net), which task create and the search commands use so that their
	// measurements are bit for bit reproducible; the gateway measures its candidates
	// through onnxruntime, the engine that serves them (gateway.Config.Measure).
	Forward ForwardMaker

	// Archive, if set, answers for measured archs without measuring again.
	Archive *task.Archive
	Limits  preprocess.Limits
	Logger  *slog.Logger // nil: slog.Default()
}

// spec is the eval preprocessing at resolution r, by the task format's rule.
func (c *EvalConfig) spec(r int) preprocess.Spec {
	m := task.Manifest{Preprocess: c.Template, CropByResolution: c.Crops}
	return m.At(r)
}

// SubnetEvaluator measures subnets of one supernet on an image-folder data set: extract,
// recalibrate BatchNorm on a fixed seeded sample of the calibration split (OFA's
// set_running_statistics), then top-1 on the whole val split with the CPU forward, which
// splits each batch across the cores. Images are decoded once; their tensors are cached
// per resolution. Results are cached by canonical arch hash. Evaluate calls run one at a
// time (each already uses every core); the type is safe for concurrent use.
type SubnetEvaluator struct {
	cfg   EvalConfig
	log   *slog.Logger
	calib []decodedItem
	val   []decodedItem

	mu      sync.Mutex // serialises Evaluate and guards the caches
	results map[string]task.Entry
	tensors map[int]*resTensors
	clock   int64 // LRU clock of tensors
	stats   EvalStats
}

// EvalStats counts the evaluator's work.
type EvalStats struct {
	Measured  int // subnets actually run
	CacheHits int // answers from the memory cache or the archive
	Skipped   int // image files that could not be decoded (excluded from every measurement)
}

type decodedItem struct {
	img   *preprocess.RGB
	label int
}

type resTensors struct {
	calib, val []float32
	used       int64
}

// NewSubnetEvaluator opens and decodes the calibration sample and the val split.
func NewSubnetEvaluator(ctx context.Context, cfg EvalConfig) (*SubnetEvaluator, error) {
	if cfg.Supernet == nil {
		return nil, errors.New("evaluator: no supernet")
	}
	if cfg.CalibImages == 0 && cfg.Calib == nil {
		cfg.CalibImages = 500
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.CalibBatch == 0 {
		cfg.CalibBatch = task.CalibBatch
	}
	if cfg.EvalBatch == 0 {
		cfg.EvalBatch = 100
	}
	if cfg.CalibSplit == "" {
		cfg.CalibSplit = SplitTrain
	}
	if cfg.MaxTensorBytes == 0 {
		cfg.MaxTensorBytes = 512 << 20
	}
	if cfg.CalibImages < 0 || (cfg.CalibImages == 0 && cfg.Calib == nil) || cfg.CalibBatch < 1 || cfg.EvalBatch < 1 || cfg.Workers < 1 {
		return nil, fmt.Errorf("evaluator: calibration images %d, calibration batch %d, eval batch %d and workers %d must be positive",
			cfg.CalibImages, cfg.CalibBatch, cfg.EvalBatch, cfg.Workers)
	}
	for _, r := range cfg.Supernet.Spec.Resolutions {
		if err := cfg.spec(r).Validate(); err != nil {
			return nil, fmt.Errorf("evaluator: preprocessing at %d px: %w", r, err)
		}
	}
	e := &SubnetEvaluator{cfg: cfg, log: cfg.Logger, results: map[string]task.Entry{}, tensors: map[int]*resTensors{}}
	if e.log == nil {
		e.log = slog.Default()
	}
	if cfg.Calib != nil {
		for _, img := range task.CalibSample(cfg.Calib, cfg.CalibImages) {
			e.calib = append(e.calib, decodedItem{img: img})
		}
	} else {
		calibSet, err := openSplit(cfg.Data, cfg.CalibSplit)
		if err != nil {
			return nil, fmt.Errorf("evaluator: %w", err)
		}
		if e.calib, err = e.decode(ctx, calibSet.Subset(cfg.CalibImages, cfg.CalibSeed)); err != nil {
			return nil, err
		}
	}
	if cfg.Val != nil {
		for _, v := range cfg.Val {
			if v.Label < 0 || v.Label >= cfg.Supernet.Spec.Classes {
				return nil, fmt.Errorf("evaluator: val label %d outside the supernet's %d classes", v.Label, cfg.Supernet.Spec.Classes)
			}
			e.val = append(e.val, decodedItem{img: v.Image, label: v.Label})
		}
	} else {
		valSet, err := openSplit(cfg.Data, SplitVal)
		if err != nil {
			return nil, fmt.Errorf("evaluator: %w", err)
		}
		if n := len(valSet.Classes); n != cfg.Supernet.Spec.Classes {
			return nil, fmt.Errorf("evaluator: data set %s has %d classes, the supernet %d", cfg.Data, n, cfg.Supernet.Spec.Classes)
		}
		if e.val, err = e.decode(ctx, valSet); err != nil {
			return nil, err
		}
	}
	if len(e.calib) == 0 || len(e.val) == 0 {
		return nil, fmt.Errorf("evaluator: no readable images (%d calibration, %d val)", len(e.calib), len(e.val))
	}
	return e, nil
}

// decode reads every item of set on all cores, keeping the set's order and skipping
// unreadable files with a warning.
func (e *SubnetEvaluator) decode(ctx context.Context, set *dataset.Set) ([]decodedItem, error) {
	out := make([]decodedItem, len(set.Items))
	errs := make([]error, len(set.Items))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(set.Items); i += workers {
				if ctx.Err() != nil {
					return
				}
				f, err := os.Open(set.Items[i].Path)
				if err != nil {
					errs[i] = err
					continue
				}
				img, err := e.cfg.Template.Decode(f, e.cfg.Limits)
				f.Close()
				out[i], errs[i] = decodedItem{img: img, label: set.Items[i].Label}, err
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluator: decode %s: %w", set.Split, err)
	}
	kept := out[:0]
	for i, it := range out {
		if errs[i] != nil {
			e.log.Warn("evaluator: skipping unreadable image", "path", set.Items[i].Path, "err", errs[i])
			e.stats.Skipped++
			continue
		}
		kept = append(kept, it)
	}
	return kept, nil
}

// Spec implements Evaluator.
func (e *SubnetEvaluator) Spec() *supernet.Spec { return e.cfg.Supernet.Spec }

// Stats returns the work counters.
func (e *SubnetEvaluator) Stats() EvalStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stats
}

// Evaluate implements Evaluator.
func (e *SubnetEvaluator) Evaluate(ctx context.Context, arch supernet.Arch) (task.Entry, error) {
	r, _, err := e.evaluate(ctx, arch, false)
	return r, err
}

// EvaluateSubnet is Evaluate also returning the subnet as measured, BatchNorm statistics
// rebuilt (nil when the answer came from the cache or the archive).
func (e *SubnetEvaluator) EvaluateSubnet(ctx context.Context, arch supernet.Arch) (task.Entry, *supernet.Subnet, error) {
	return e.evaluate(ctx, arch, true)
}

func (e *SubnetEvaluator) evaluate(ctx context.Context, arch supernet.Arch, keep bool) (task.Entry, *supernet.Subnet, error) {
	spec := e.Spec()
	a, err := spec.Canonical(arch)
	if err != nil {
		return task.Entry{}, nil, fmt.Errorf("evaluate: %w", err)
	}
	h := a.Hash()
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.results[h]; ok && !keep {
		e.stats.CacheHits++
		return r, nil, nil
	}
	if e.cfg.Archive != nil && !keep {
		if r, ok := e.cfg.Archive.Lookup(h); ok && !r.Predicted && r.Split == SplitVal {
			e.stats.CacheHits++
			r.Source, r.Iteration = "", 0
			e.results[h] = r
			return r, nil, nil
		}
	}
	sub, err := e.cfg.Supernet.Extract(a)
	if err != nil {
		return task.Entry{}, nil, fmt.Errorf("evaluate %s: %w", h[:12], err)
	}
	err = sub.RecalibrateOn(ctx, func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
		return e.batches(ctx, a.R, calibItems, func(x []float32, n int) error { return fn(x, n, a.R, a.R) })
	}, e.cfg.Workers)
	if err != nil {
		return task.Entry{}, nil, fmt.Errorf("evaluate %s: %w", h[:12], err)
	}
	top1, err := e.top1(ctx, sub)
	if err != nil {
		return task.Entry{}, nil, fmt.Errorf("evaluate %s: %w", h[:12], err)
	}
	cnt := sub.Count()
	r := task.Entry{Arch: a, Hash: h, MAdds: cnt.MAdds, Params: cnt.Params,
		Top1: top1, Split: SplitVal}
	e.results[h] = r
	e.stats.Measured++
	return r, sub, nil
}

// Top1 measures a subnet as it is, its BatchNorm statistics already set (a task's stored
// ones), on the evaluator's val images.
func (e *SubnetEvaluator) Top1(ctx context.Context, sub *supernet.Subnet) (float64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.top1(ctx, sub)
}

// top1 is Top1 for callers holding e.mu.
func (e *SubnetEvaluator) top1(ctx context.Context, sub *supernet.Subnet) (float64, error) {
	r := sub.Resolution
	var net Forwarder
	if e.cfg.Forward != nil {
		fw, release, err := e.cfg.Forward(ctx, sub)
		if err != nil {
			return 0, err
		}
		defer release()
		net = fw
	} else {
		net = sub.CompileOn(e.cfg.Workers)
	}
	correct, lo := 0, 0
	err := e.batches(ctx, r, valItems, func(x []float32, n int) error {
		logits, err := net.Forward(ctx, x, n, r, r)
		if err != nil {
			return err
		}
		c := net.Classes()
		for i := range n {
			if scores.Argmax(logits[i*c:(i+1)*c]) == e.val[lo+i].label {
				correct++
			}
		}
		lo += n
		return nil
	})
	if err != nil {
		return 0, err
	}
	return float64(correct) / float64(len(e.val)), nil
}

// The two image sets an evaluation runs, each in its own batch size.
type itemSet int

const (
	calibItems itemSet = iota // the calibration sample, in CalibBatch batches
	valItems                  // the val split, in EvalBatch batches
)

// batches calls fn with consecutive batches of a set preprocessed at resolution r, x being
// [n,3,r,r]: slices of the resolution's cached tensors, or, for a resolution too large to
// keep, tensors made batch by batch. Callers hold e.mu.
func (e *SubnetEvaluator) batches(ctx context.Context, r int, set itemSet, fn func(x []float32, n int) error) error {
	items, batch := e.val, e.cfg.EvalBatch
	if set == calibItems {
		items, batch = e.calib, e.cfg.CalibBatch
	}
	img := 3 * r * r
	if e.fits(r) {
		ts, err := e.tensorsFor(ctx, r)
		if err != nil {
			return err
		}
		all := ts.val
		if set == calibItems {
			all = ts.calib
		}
		for lo := 0; lo < len(items); lo += batch {
			hi := min(lo+batch, len(items))
			if err := fn(all[lo*img:hi*img], hi-lo); err != nil {
				return err
			}
		}
		return nil
	}
	spec := e.cfg.spec(r)
	buf := make([]float32, min(batch, len(items))*img)
	for lo := 0; lo < len(items); lo += batch {
		hi := min(lo+batch, len(items))
		x := buf[:(hi-lo)*img]
		if err := e.preprocess(spec, items[lo:hi], x); err != nil {
			return fmt.Errorf("evaluator: preprocess at %d: %w", r, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(x, hi-lo); err != nil {
			return err
		}
	}
	return nil
}

// fits reports whether resolution r's tensors fit MaxTensorBytes.
func (e *SubnetEvaluator) fits(r int) bool {
	return 4*int64(3*r*r)*int64(len(e.calib)+len(e.val)) <= e.cfg.MaxTensorBytes
}

// preprocess fills dst with items preprocessed by spec, on the evaluator's workers (on
// the calling goroutine for one).
func (e *SubnetEvaluator) preprocess(spec preprocess.Spec, items []decodedItem, dst []float32) error {
	img := spec.TensorLen()
	workers := e.cfg.Workers
	if workers == 1 {
		for i := range items {
			if err := spec.Tensor(items[i].img, dst[i*img:(i+1)*img]); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(items); i += workers {
				if err := spec.Tensor(items[i].img, dst[i*img:(i+1)*img]); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tensorsFor returns the preprocessed calibration and val tensors at resolution r,
// building them on first use and evicting least recently used resolutions beyond the
// byte bound (always keeping the one asked for). Callers hold e.mu.
func (e *SubnetEvaluator) tensorsFor(ctx context.Context, r int) (*resTensors, error) {
	e.clock++
	if ts, ok := e.tensors[r]; ok {
		ts.used = e.clock
		return ts, nil
	}
	spec := e.cfg.spec(r)
	img := 3 * r * r
	ts := &resTensors{calib: make([]float32, len(e.calib)*img), val: make([]float32, len(e.val)*img), used: e.clock}
	build := func(items []decodedItem, dst []float32) error { return e.preprocess(spec, items, dst) }
	if err := build(e.calib, ts.calib); err != nil {
		return nil, fmt.Errorf("evaluator: preprocess at %d: %w", r, err)
	}
	if err := build(e.val, ts.val); err != nil {
		return nil, fmt.Errorf("evaluator: preprocess at %d: %w", r, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluator: %w", err)
	}
	e.tensors[r] = ts
	for e.tensorBytes() > e.cfg.MaxTensorBytes && len(e.tensors) > 1 {
		oldest, at := 0, int64(1<<62)
		for res, t := range e.tensors {
			if res != r && t.used < at {
				oldest, at = res, t.used
			}
		}
		delete(e.tensors, oldest)
	}
	return ts, nil
}

func (e *SubnetEvaluator) tensorBytes() int64 {
	var n int64
	for _, t := range e.tensors {
		n += 4 * int64(len(t.calib)+len(t.val))
	}
	return n
}
