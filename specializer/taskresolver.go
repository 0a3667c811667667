package specializer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// TaskOptions configure ForTask. Zero values take the defaults given.
type TaskOptions struct {
	// SearchTime limits one background surrogate search; 0 turns searching off (answers
	// come from the archive alone).
	SearchTime time.Duration
	// Calibration is how a candidate's BatchNorm statistics are rebuilt on the task's
	// calibration images; zero: as the archive's were.
	Calibration task.Calibration
	// Workers bounds the cores one background measurement uses; default 1, which leaves the
	// others to requests.
	Workers int
	Queue   int // background work waiting at most (ResolverConfig.Queue)
	// Forward runs a candidate's val pass (EvalConfig.Forward); nil: natgw's Go forward.
	Forward ForwardMaker
	Seed    uint64
	Logger  *slog.Logger
}

// ForTask returns a task's resolver: answers from its archive and, when the task folder
// has validation images and SearchTime is set, candidates searched for and measured in
// the background exactly as the archive's subnets were measured (BatchNorm rebuilt on the
// task's calibration images, top-1 on its val images); a measured candidate's statistics
// join the task's (t.Stats), so that serving it needs no forward pass either. Close the
// resolver when done.
func ForTask(t *task.Task, opt TaskOptions) (*Resolver, error) {
	if opt.Workers == 0 {
		opt.Workers = 1
	}
	if opt.SearchTime < 0 || opt.Calibration.Images < 0 || opt.Calibration.Batch < 0 || opt.Workers < 1 {
		return nil, fmt.Errorf("task %s: search time %v, calibration %+v and workers %d out of range", t.Name, opt.SearchTime, opt.Calibration, opt.Workers)
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg := ResolverConfig{Spec: t.Supernet.Spec, Archive: t.Archive, SearchTime: opt.SearchTime, Seed: opt.Seed,
		Queue: opt.Queue, Logger: log,
		// A measurement leaves hundreds of megabytes of activations behind: returned to the
		// system once the queue is empty (between measurements the next one reuses them).
		Idle: func() {
			supernet.ReleaseCalibrationBuffers()
			debug.FreeOSMemory()
		},
		// One core at the lowest priority: a server's requests come first.
		Background: opt.Workers == 1}
	if opt.SearchTime > 0 {
		if _, err := t.ValImages(); err == nil {
			cfg.Evaluator = &taskEvaluator{t: t, opt: opt}
		} else if errors.Is(err, task.ErrNoVal) {
			log.Info("no validation images in the task folder: budgets are answered from the archive only, nothing new is measured")
		} else {
			return nil, fmt.Errorf("task %s: %w", t.Name, err)
		}
	}
	return NewResolver(cfg)
}

// measureEvalBatch is the val batch of a background measurement: at 224 px a batch of 16
// holds about 80 MB of activations where the offline default of 100 holds 500.
const measureEvalBatch = 16

// taskEvaluator measures subnets on a task folder's own images: the calibration sample
// and the val split. It is built on first use.
type taskEvaluator struct {
	t    *task.Task
	opt  TaskOptions
	once sync.Once
	ev   *SubnetEvaluator
	err  error
}

func (e *taskEvaluator) Spec() *supernet.Spec { return e.t.Supernet.Spec }

// Evaluate measures arch and keeps its BatchNorm statistics with the task's.
func (e *taskEvaluator) Evaluate(ctx context.Context, arch supernet.Arch) (task.Entry, error) {
	e.once.Do(func() {
		val, err := e.t.ValImages()
		if err != nil {
			e.err = err
			return
		}
		e.ev, e.err = NewSubnetEvaluator(ctx, EvalConfig{
			Supernet: e.t.Supernet, Template: e.t.Manifest.Preprocess, Crops: e.t.CropByResolution,
			Calib: e.t.Calib, CalibImages: e.opt.Calibration.Images, CalibBatch: e.opt.Calibration.Batch, Val: val, Workers: e.opt.Workers,
			// No tensors kept and small forward batches (a batch changes an image's logits by
			// float rounding only, TestLogitsBatchRoundingOnly): a server's memory is for
			// requests, and each candidate is measured once.
			MaxTensorBytes: 1, EvalBatch: measureEvalBatch, Forward: e.opt.Forward,
		})
	})
	if e.err != nil {
		return task.Entry{}, e.err
	}
	entry, sub, err := e.ev.EvaluateSubnet(ctx, arch)
	if err != nil {
		return task.Entry{}, err
	}
	if c := e.opt.Calibration; !c.IsTask(len(e.t.Calib)) {
		c = c.Normal(len(e.t.Calib))
		entry.Calibration = &c
	}
	mean, variance := sub.BNStats()
	e.t.Stats.Put(entry.Hash, mean, variance)
	return entry, nil
}
