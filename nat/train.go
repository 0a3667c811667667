package nat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/internal/cpu"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
	"github.com/natgw/natgw/trainer"
)

// TrainConfig is one supernet training run (natgw train): a NAT recipe's warm-up, or the
// baselines it is compared with (a fixed network fine-tuned, a linear probe).
type TrainConfig struct {
	Supernet string // checkpoint to start from
	Data     string // image-folder data set with train/ (and val/ for the final validation)
	Out      string // where the trained supernet goes (natgw native format)
	State    string // resumable training state; default Out + ".state"

	Resolution  int   // training and validation input size
	Resolutions []int // input sizes of the training batches, one drawn per step (nil: Resolution)
	Batch       int
	Epochs      int
	MaxSteps    int // stop after this many steps in all (0: the epochs')
	Subnets     int // random subnets per step besides the top and the smallest
	LR          float64
	Warmup      int // warm-up steps; -1: 5 % of the steps
	WeightDecay float64
	Smoothing   float64
	KDRatio     float64
	Seed        uint64
	ValEvery    int // validate every this many steps (0: at the end only)
	CalibImages int // train images BatchNorm is recalibrated on before validation
	StateEvery  int
	Workers     int
	CropScale   float64
	HeadStd     float64 // spread of a new head's weights (0: 1/√fan-in)
	Dropout     float64 // before the classifier; negative: the spec's
	Elastic     supernet.Dims
	// Teacher distils from this checkpoint's largest subnet, frozen, instead of the top.
	Teacher string
	// Fixed trains this subnet only (conventional fine-tuning); Top puts this one at the top
	// of the sandwich instead of the largest, TopSizes the sizes it also trains at, TopKD
	// makes it the teacher of every other pass, its labels weighed TopKDWeight.
	Fixed       *supernet.Arch
	Top         *supernet.Arch
	TopSizes    []int
	TopKD       bool
	TopKDWeight float64
	// TrainOnly are tensor-name prefixes that are updated (a linear probe: "classifier.");
	// nil: all.
	TrainOnly []string
	// Progress, if set, gets the trainer's text lines.
	Progress func(line string)
	// OnStep, if set, is called after every step (step, total, loss).
	OnStep func(step, total int, loss float64)
}

// DefaultTrainConfig is natgw train's defaults; the paths, Resolution, Batch and Epochs
// are the caller's.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{Subnets: 2, LR: 0.025, Warmup: -1, WeightDecay: 3e-5, Smoothing: 0.1, KDRatio: 1, Seed: 1,
		CalibImages: 500, StateEvery: 200, CropScale: 0.5, HeadStd: trainer.HeadStd, Dropout: -1, Elastic: supernet.AllDims()}
}

// TrainResult is what a training run did.
type TrainResult struct {
	trainer.Result
	Out     string
	State   string
	Spec    string
	Classes int
}

// Train trains a supernet as natgw train does and writes it; a killed run resumes from
// its State.
func Train(ctx context.Context, c TrainConfig) (TrainResult, error) {
	if c.Resolution < 8 || c.Batch < 1 || (c.Epochs < 1 && c.MaxSteps < 1) || c.Subnets < 0 || c.CalibImages < 0 || c.StateEvery < 0 || c.Workers < 0 {
		return TrainResult{}, &ConfigError{errors.New("Resolution ≥ 8, Batch ≥ 1, Epochs or MaxSteps ≥ 1, Subnets, CalibImages, StateEvery, Workers ≥ 0 required")}
	}
	if c.CropScale <= 0 || c.CropScale > 1 {
		return TrainResult{}, &ConfigError{fmt.Errorf("CropScale %g: want 0 < it ≤ 1", c.CropScale)}
	}
	if c.Fixed != nil && c.Top != nil {
		return TrainResult{}, &ConfigError{errors.New("Top and Fixed exclude each other (a fixed subnet has no sandwich)")}
	}
	if c.State == "" {
		c.State = c.Out + ".state"
	}
	trainSet, err := dataset.Open(c.Data, "train")
	if err != nil {
		return TrainResult{}, err
	}
	sn, err := supernet.Load(c.Supernet, supernet.LoadOptions{})
	if err != nil {
		return TrainResult{}, err
	}
	if sn, err = trainer.WithClasses(sn, len(trainSet.Classes), c.Seed, c.HeadStd); err != nil {
		return TrainResult{}, err
	}
	if c.Dropout >= 0 {
		spec := *sn.Spec
		spec.Dropout = c.Dropout
		if err := spec.Validate(); err != nil {
			return TrainResult{}, &ConfigError{fmt.Errorf("Dropout %g: %w", c.Dropout, err)}
		}
		sn.Spec = &spec
	}
	var teach func(ctx context.Context, x []float32, n, r int) ([]float32, error)
	if c.Teacher != "" {
		if teach, err = loadTeacher(c.Teacher, sn.Spec.Classes); err != nil {
			return TrainResult{}, err
		}
	}
	eval, err := task.SupernetPreprocess(sn, c.Resolution)
	if err != nil {
		return TrainResult{}, err
	}
	trainLoader, err := dataset.NewLoader(dataset.Config{Set: trainSet, Spec: eval, Batch: c.Batch, Shuffle: true, Seed: c.Seed,
		Augment: &dataset.Augment{RandomResizedCrop: true, ScaleMin: c.CropScale, ScaleMax: 1, HFlip: true}, Workers: c.Workers, DropLast: true, CacheDecoded: true,
		Resolutions: c.Resolutions})
	if err != nil {
		return TrainResult{}, err
	}
	d := trainer.Data{Train: trainLoader}
	if _, err := os.Stat(filepath.Join(c.Data, task.SplitVal)); err != nil {
		if c.Progress != nil {
			c.Progress(fmt.Sprintf("no validation: %v", err))
		}
	} else if valSet, err := dataset.Open(c.Data, task.SplitVal); err != nil {
		return TrainResult{}, err
	} else {
		if d.Val, err = dataset.NewLoader(dataset.Config{Set: valSet, Spec: eval, Batch: 64, Workers: c.Workers, CacheDecoded: true}); err != nil {
			return TrainResult{}, err
		}
		if c.CalibImages > 0 {
			d.Calib, err = dataset.NewLoader(dataset.Config{Set: trainSet.Subset(c.CalibImages, c.Seed), Spec: eval, Batch: 64, Workers: c.Workers, CacheDecoded: true})
			if err != nil {
				return TrainResult{}, err
			}
		}
	}
	cfg := trainer.DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Epochs, cfg.MaxSteps, cfg.Subnets = c.Batch, c.Resolution, c.Epochs, c.MaxSteps, c.Subnets
	cfg.LR, cfg.WeightDecay, cfg.LabelSmoothing, cfg.KDRatio, cfg.Seed = c.LR, c.WeightDecay, c.Smoothing, c.KDRatio, c.Seed
	cfg.ValEvery, cfg.Checkpoint, cfg.CheckpointEvery = c.ValEvery, c.State, c.StateEvery
	if c.Progress != nil {
		cfg.Progress = lineWriter(c.Progress)
	}
	cfg.OnStep = c.OnStep
	cfg.Fixed, cfg.Top, cfg.TopSizes, cfg.TopKD, cfg.TopKDWeight = c.Fixed, c.Top, c.TopSizes, c.TopKD, c.TopKDWeight
	if c.Elastic != supernet.AllDims() {
		dims := c.Elastic
		cfg.Elastic = &dims
	}
	cfg.Teacher = teach
	if len(c.TrainOnly) > 0 {
		prefixes := c.TrainOnly
		cfg.Trainable = func(name string) bool {
			for _, p := range prefixes {
				if strings.HasPrefix(name, p) {
					return true
				}
			}
			return false
		}
	}
	tr, err := trainer.New(sn, cfg)
	if err != nil {
		return TrainResult{}, err
	}
	total := tr.TotalSteps(trainLoader.NumBatches())
	if c.Warmup < 0 {
		cfg.WarmupSteps = total / 20
	} else {
		cfg.WarmupSteps = c.Warmup
	}
	if tr, err = trainer.New(sn, cfg); err != nil {
		return TrainResult{}, err
	}
	if _, err := os.Stat(c.State); err == nil {
		if err := tr.Resume(c.State); err != nil {
			return TrainResult{}, err
		}
		if c.Progress != nil {
			c.Progress(fmt.Sprintf("resumed from %s at step %d", c.State, tr.StepCount()))
		}
	}
	result, err := tr.Fit(ctx, d)
	if err != nil {
		return TrainResult{}, err
	}
	labelsJSON, _ := json.Marshal(trainSet.Labels) // []string cannot fail
	sn.Meta["labels"] = string(labelsJSON)
	sn.Meta["trained_by"] = "natgw train"
	sn.Meta["train_data"] = c.Data
	sn.Meta["train_steps"] = fmt.Sprint(result.Steps)
	sn.Meta["train_blas"] = cpu.BLAS()
	if err := sn.Save(c.Out, supernet.SaveOptions{}); err != nil {
		return TrainResult{}, err
	}
	return TrainResult{Result: result, Out: c.Out, State: c.State, Spec: sn.Spec.Name, Classes: sn.Spec.Classes}, nil
}

// loadTeacher compiles the largest subnet of a checkpoint, with its stored BatchNorm
// statistics, as a frozen source of soft targets. Its head must have the student's classes.
func loadTeacher(path string, classes int) (func(ctx context.Context, x []float32, n, r int) ([]float32, error), error) {
	sn, err := supernet.Load(path, supernet.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if sn.Spec.Classes != classes {
		return nil, fmt.Errorf("teacher %s: %d classes, the trained network has %d", path, sn.Spec.Classes, classes)
	}
	sub, err := sn.Extract(sn.Spec.Largest())
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	net := sub.Compile()
	return func(ctx context.Context, x []float32, n, r int) ([]float32, error) {
		return net.Forward(ctx, x, n, r, r)
	}, nil
}
