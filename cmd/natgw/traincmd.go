package main

import (
	"context"
	"encoding/json"
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

// trainSummary is the JSON line `natgw train` prints last.
type trainSummary struct {
	Steps        int              `json:"steps"`
	StepsRun     int              `json:"steps_run"`
	ImagesPerSec float64          `json:"images_per_sec"`
	FinalLoss    float64          `json:"final_loss"`
	FirstLoss    float64          `json:"first_loss"`
	Evals        []trainer.Eval   `json:"evals,omitempty"`
	Out          string           `json:"out"`
	State        string           `json:"state,omitempty"`
	Spec         string           `json:"spec"`
	Classes      int              `json:"classes"`
	Config       trainFlagsRecord `json:"config"`
}

type trainFlagsRecord struct {
	Resolution  int     `json:"resolution"`
	Batch       int     `json:"batch"`
	Epochs      int     `json:"epochs"`
	MaxSteps    int     `json:"max_steps"`
	Subnets     int     `json:"subnets"`
	LR          float64 `json:"lr"`
	Seed        uint64  `json:"seed"`
	Elastic     string  `json:"elastic"`
	Sizes       []int   `json:"resolutions,omitempty"` // training batch sizes when elastic
	Teacher     string  `json:"teacher,omitempty"`
	Top         string  `json:"top,omitempty"`
	TopSizes    []int   `json:"top_sizes,omitempty"`
	TopKD       bool    `json:"top_kd,omitempty"`
	TopKDWeight float64 `json:"top_kd_weight,omitempty"`
}

func cmdTrain(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "train")
	ckpt := fs.String("supernet", "", "supernet checkpoint to start from (OFA .pth or natgw native)")
	data := fs.String("data", "", "image-folder data set root with train/ (and val/ for validation)")
	res := fs.Int("resolution", 0, "training and validation input size R")
	batch := fs.Int("batch", 0, "images per step")
	epochs := fs.Int("epochs", 0, "passes over train/")
	maxSteps := fs.Int("max-steps", 0, "stop after this many steps in all (0: epochs' worth)")
	subnets := fs.Int("subnets", 2, "random subnets per step besides the largest (or --top) and the smallest")
	out := fs.String("out", "", "where to write the trained supernet (natgw native format)")
	lr := fs.Float64("lr", 0.025, "peak learning rate (cosine schedule after the warm-up)")
	warmup := fs.Int("warmup", -1, "warm-up steps (-1: 5% of the steps)")
	wd := fs.Float64("weight-decay", 3e-5, "weight decay (not on BatchNorm and bias tensors)")
	smoothing := fs.Float64("label-smoothing", 0.1, "label smoothing")
	kd := fs.Float64("kd-ratio", 1, "weight of the distillation loss (soft targets from --teacher, else from the largest subnet)")
	seed := fs.Uint64("seed", 1, "seed of subnet sampling, data order and augmentation")
	valEvery := fs.Int("val-every", 0, "validate the largest subnet every K steps (0: only at the end)")
	calib := fs.Int("calib", 500, "training images (eval preprocessing) for BatchNorm recalibration before validation")
	state := fs.String("state", "", "resumable training state; resumed from when it exists (default: --out + .state)")
	stateEvery := fs.Int("state-every", 200, "write the training state every this many steps")
	workers := fs.Int("workers", 0, "image decoding goroutines (0: one per core)")
	top := fs.String("top", "", "the sandwich's top subnet instead of the largest (OFA arch JSON or @file): trained every step and the source of the others' soft targets")
	topSizes := fs.String("top-sizes", "", "comma-separated input sizes at which the top subnet (--top or the largest) also trains every step, on the batch resized, besides the batch's own size; empty: the batch's only")
	topKD := fs.Bool("top-kd", false, "with --top-sizes: the top at its largest size teaches every other pass, the top at its smaller sizes included")
	topKDWeight := fs.Float64("top-kd-weight", 0, "with --top-kd: weight of the teaching pass's hard labels (1 + the kd ratio weighs it as each other pass; 0 = 1)")
	fixed := fs.String("fixed", "", "train only this subnet (OFA arch JSON or @file): conventional fine-tuning of a fixed architecture")
	headStd := fs.Float64("head-std", trainer.HeadStd, "spread of a new task head's weights, when the data set's classes differ from the supernet's (0: a fresh network's 1/√fan-in)")
	dropout := fs.Float64("dropout", -1, "dropout before the classifier (-1: the spec's)")
	only := fs.String("train-only", "", "comma-separated tensor-name prefixes that are updated (e.g. classifier. for a linear probe); empty: all")
	sizes := fs.String("resolutions", "", "comma-separated input sizes of the training batches, one drawn per step (elastic resolution; validation stays at --resolution); empty: --resolution only")
	cropScale := fs.Float64("crop-scale", 0.5, "smallest area fraction of the random resized crop")
	elastic := fs.String("elastic", "all", "elastic dimensions of the sandwich, a subset of ks,d,e (progressive shrinking: ks, then ks,d, then all); the others stay at their largest")
	teacherCkpt := fs.String("teacher", "", "distil from this checkpoint's largest subnet, frozen (e.g. the imported pretrained network), instead of the largest subnet being trained")
	if err := parse(fs, args, "supernet", "data", "out"); err != nil {
		return helpOK(err)
	}
	if *res < 8 || *batch < 1 || (*epochs < 1 && *maxSteps < 1) || *subnets < 0 || *calib < 0 || *stateEvery < 0 || *workers < 0 {
		return usageError{"train: --resolution ≥ 8, --batch ≥ 1, --epochs or --max-steps ≥ 1, --subnets, --calib, --state-every, --workers ≥ 0 required"}
	}
	if *state == "" {
		*state = *out + ".state"
	}
	trainSet, err := dataset.Open(*data, "train")
	if err != nil {
		return err
	}
	sn, err := supernet.Load(*ckpt, supernet.LoadOptions{})
	if err != nil {
		return err
	}
	if sn, err = trainer.WithClasses(sn, len(trainSet.Classes), *seed, *headStd); err != nil {
		return err
	}
	if *dropout >= 0 {
		spec := *sn.Spec
		spec.Dropout = *dropout
		if err := spec.Validate(); err != nil {
			return usageError{fmt.Sprintf("train: --dropout: %v", err)}
		}
		sn.Spec = &spec
	}
	dims, err := supernet.ParseDims(*elastic)
	if err != nil {
		return usageError{"train: --elastic: " + err.Error()}
	}
	var teach func(ctx context.Context, x []float32, n, r int) ([]float32, error)
	if *teacherCkpt != "" {
		if teach, err = loadTeacher(*teacherCkpt, sn.Spec.Classes); err != nil {
			return err
		}
	}
	var fixedArch *supernet.Arch
	if *fixed != "" {
		a, err := supernet.ReadArchArg(*fixed)
		if err != nil {
			return fmt.Errorf("--fixed: %w", err)
		}
		fixedArch = &a
	}
	var topArch *supernet.Arch
	if *top != "" {
		if fixedArch != nil {
			return usageError{"train: --top and --fixed exclude each other (a fixed subnet has no sandwich)"}
		}
		a, err := supernet.ReadArchArg(*top)
		if err != nil {
			return usageError{"train: --top: " + err.Error()}
		}
		topArch = &a
	}
	var topSizeList []int
	if *topSizes != "" {
		if topSizeList, err = parseSizes(*topSizes); err != nil {
			return usageError{"train: --top-sizes: " + err.Error()}
		}
	}
	if *cropScale <= 0 || *cropScale > 1 {
		return usageError{"train: --crop-scale in (0, 1]"}
	}
	var trainSizes []int
	if *sizes != "" {
		if trainSizes, err = parseSizes(*sizes); err != nil {
			return usageError{"train: --resolutions: " + err.Error()}
		}
	}
	eval, err := task.SupernetPreprocess(sn, *res)
	if err != nil {
		return err
	}
	trainLoader, err := dataset.NewLoader(dataset.Config{Set: trainSet, Spec: eval, Batch: *batch, Shuffle: true, Seed: *seed,
		Augment: &dataset.Augment{RandomResizedCrop: true, ScaleMin: *cropScale, ScaleMax: 1, HFlip: true}, Workers: *workers, DropLast: true, CacheDecoded: true,
		Resolutions: trainSizes})
	if err != nil {
		return err
	}
	d := trainer.Data{Train: trainLoader}
	if _, err := os.Stat(filepath.Join(*data, "val")); err != nil {
		fmt.Fprintf(env.stderr, "train: no validation: %v\n", oneLine(err))
	} else if valSet, err := dataset.Open(*data, "val"); err != nil {
		return err
	} else {
		if d.Val, err = dataset.NewLoader(dataset.Config{Set: valSet, Spec: eval, Batch: 64, Workers: *workers, CacheDecoded: true}); err != nil {
			return err
		}
		if *calib > 0 {
			d.Calib, err = dataset.NewLoader(dataset.Config{Set: trainSet.Subset(*calib, *seed), Spec: eval, Batch: 64, Workers: *workers, CacheDecoded: true})
			if err != nil {
				return err
			}
		}
	}
	cfg := trainer.DefaultConfig()
	cfg.Batch, cfg.Resolution, cfg.Epochs, cfg.MaxSteps, cfg.Subnets = *batch, *res, *epochs, *maxSteps, *subnets
	cfg.LR, cfg.WeightDecay, cfg.LabelSmoothing, cfg.KDRatio, cfg.Seed = *lr, *wd, *smoothing, *kd, *seed
	cfg.ValEvery, cfg.Checkpoint, cfg.CheckpointEvery, cfg.Progress = *valEvery, *state, *stateEvery, env.stderr
	cfg.Fixed, cfg.Top, cfg.TopSizes, cfg.TopKD, cfg.TopKDWeight = fixedArch, topArch, topSizeList, *topKD, *topKDWeight
	if dims != supernet.AllDims() {
		cfg.Elastic = &dims
	}
	cfg.Teacher = teach
	if *only != "" {
		prefixes := strings.Split(*only, ",")
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
		return err
	}
	total := tr.TotalSteps(trainLoader.NumBatches())
	if *warmup < 0 {
		cfg.WarmupSteps = total / 20
	} else {
		cfg.WarmupSteps = *warmup
	}
	if tr, err = trainer.New(sn, cfg); err != nil {
		return err
	}
	if _, err := os.Stat(*state); err == nil {
		if err := tr.Resume(*state); err != nil {
			return err
		}
		fmt.Fprintf(env.stderr, "train: resumed from %s at step %d\n", *state, tr.StepCount())
	}
	result, err := tr.Fit(ctx, d)
	if err != nil {
		return err
	}
	labelsJSON, _ := json.Marshal(trainSet.Labels) // []string cannot fail
	sn.Meta["labels"] = string(labelsJSON)
	sn.Meta["trained_by"] = "natgw train"
	sn.Meta["train_data"] = *data
	sn.Meta["train_steps"] = fmt.Sprint(result.Steps)
	sn.Meta["train_blas"] = cpu.BLAS()
	if err := sn.Save(*out, supernet.SaveOptions{}); err != nil {
		return err
	}
	line, err := json.Marshal(trainSummary{
		Steps: result.Steps, StepsRun: result.StepsRun, ImagesPerSec: result.ImagesPerSec,
		FinalLoss: result.FinalLoss, FirstLoss: result.FirstLoss, Evals: result.Evals,
		Out: *out, State: *state, Spec: sn.Spec.Name, Classes: sn.Spec.Classes,
		Config: trainFlagsRecord{Resolution: *res, Batch: *batch, Epochs: *epochs, MaxSteps: *maxSteps, Subnets: *subnets, LR: *lr, Seed: *seed, Elastic: dims.String(), Teacher: *teacherCkpt, Top: *top, Sizes: trainSizes, TopSizes: topSizeList, TopKD: *topKD, TopKDWeight: *topKDWeight},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, string(line))
	return nil
}

// loadTeacher compiles the largest subnet of a checkpoint, with its stored BatchNorm
// statistics, as a frozen source of soft targets. Its head must have the student's classes.
func loadTeacher(path string, classes int) (func(ctx context.Context, x []float32, n, r int) ([]float32, error), error) {
	sn, err := supernet.Load(path, supernet.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("--teacher: %w", err)
	}
	if sn.Spec.Classes != classes {
		return nil, fmt.Errorf("--teacher %s: %d classes, the trained network has %d", path, sn.Spec.Classes, classes)
	}
	sub, err := sn.Extract(sn.Spec.Largest())
	if err != nil {
		return nil, fmt.Errorf("--teacher: %w", err)
	}
	net := sub.Compile()
	return func(ctx context.Context, x []float32, n, r int) ([]float32, error) {
		return net.Forward(ctx, x, n, r, r)
	}, nil
}
