package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/supernet"
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
	c := nat.DefaultTrainConfig()
	c.Supernet, c.Data, c.Out, c.State = *ckpt, *data, *out, *state
	c.Resolution, c.Batch, c.Epochs, c.MaxSteps, c.Subnets = *res, *batch, *epochs, *maxSteps, *subnets
	c.LR, c.Warmup, c.WeightDecay, c.Smoothing, c.KDRatio, c.Seed = *lr, *warmup, *wd, *smoothing, *kd, *seed
	c.ValEvery, c.CalibImages, c.StateEvery, c.Workers = *valEvery, *calib, *stateEvery, *workers
	c.CropScale, c.HeadStd, c.Dropout, c.Teacher, c.TopKD, c.TopKDWeight = *cropScale, *headStd, *dropout, *teacherCkpt, *topKD, *topKDWeight
	c.Progress = func(line string) { fmt.Fprintln(env.stderr, line) }
	var err error
	if c.Elastic, err = supernet.ParseDims(*elastic); err != nil {
		return usageError{"train: --elastic: " + err.Error()}
	}
	if *fixed != "" {
		a, err := supernet.ReadArchArg(*fixed)
		if err != nil {
			return fmt.Errorf("--fixed: %w", err)
		}
		c.Fixed = &a
	}
	if *top != "" {
		if c.Fixed != nil {
			return usageError{"train: --top and --fixed exclude each other (a fixed subnet has no sandwich)"}
		}
		a, err := supernet.ReadArchArg(*top)
		if err != nil {
			return usageError{"train: --top: " + err.Error()}
		}
		c.Top = &a
	}
	if *topSizes != "" {
		if c.TopSizes, err = parseSizes(*topSizes); err != nil {
			return usageError{"train: --top-sizes: " + err.Error()}
		}
	}
	if *sizes != "" {
		if c.Resolutions, err = parseSizes(*sizes); err != nil {
			return usageError{"train: --resolutions: " + err.Error()}
		}
	}
	if *only != "" {
		c.TrainOnly = strings.Split(*only, ",")
	}
	result, err := nat.Train(ctx, c)
	var cfgErr *nat.ConfigError
	if errors.As(err, &cfgErr) {
		return usageError{"train: " + oneLine(withFlagNames(cfgErr, trainFlags))}
	}
	if err != nil {
		return err
	}
	line, err := json.Marshal(trainSummary{
		Steps: result.Steps, StepsRun: result.StepsRun, ImagesPerSec: result.ImagesPerSec,
		FinalLoss: result.FinalLoss, FirstLoss: result.FirstLoss, Evals: result.Evals,
		Out: result.Out, State: result.State, Spec: result.Spec, Classes: result.Classes,
		Config: trainFlagsRecord{Resolution: *res, Batch: *batch, Epochs: *epochs, MaxSteps: *maxSteps, Subnets: *subnets, LR: *lr, Seed: *seed, Elastic: c.Elastic.String(), Teacher: *teacherCkpt, Top: *top, Sizes: c.Resolutions, TopSizes: c.TopSizes, TopKD: *topKD, TopKDWeight: *topKDWeight},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, string(line))
	return nil
}

// trainFlags names nat.TrainConfig's fields by their natgw train flags.
var trainFlags = map[string]string{
	"Resolution": "--resolution", "Batch": "--batch", "Epochs": "--epochs", "MaxSteps": "--max-steps",
	"Subnets": "--subnets", "CalibImages": "--calib", "StateEvery": "--state-every", "Workers": "--workers",
	"CropScale": "--crop-scale", "Top": "--top", "Fixed": "--fixed", "Dropout": "--dropout",
}
