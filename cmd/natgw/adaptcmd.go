package main

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
)

// cmdAdapt runs NAT's adaptation (package nat): alternate a surrogate-assisted search on
// the current weights with fine-tuning on subnets drawn from the archive's best members,
// then search once more on the final weights and write a servable task folder. Every
// phase leaves files in --work from which a rerun continues. Progress goes to stderr (a
// status line on a terminal, JSON lines otherwise); the result, as JSON, to stdout.
func cmdAdapt(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "adapt")
	c := nat.DefaultConfig()
	fs.StringVar(&c.Supernet, "supernet", "", "supernet to adapt (natgw native or OFA .pth); its classifier is re-initialised when the class count differs")
	fs.StringVar(&c.Data, "data", "", "image-folder data set with train/ and val/ (test/ is never read)")
	fs.StringVar(&c.Out, "out", "", "task folder to write (task.json, supernet, labels, archive, calib/, val/, statistics)")
	fs.StringVar(&c.Work, "work", "", "folder for resumable state: weights, archives and trainer state of every iteration (default: --out + \".work\")")
	fs.StringVar(&c.Name, "name", "", "task name (default: the --out folder's name)")
	fs.StringVar(&c.Description, "description", "", "task description for task.json")
	fs.StringVar(&c.Dataset, "dataset", "", "data set name for task.json (default: the --data folder's name)")
	fs.IntVar(&c.Iterations, "iterations", c.Iterations, "search + fine-tune rounds before the final search")
	fs.IntVar(&c.Epochs, "epochs", 3, "fine-tuning epochs per iteration")
	fs.IntVar(&c.Batch, "batch", c.Batch, "images per training step")
	fs.IntVar(&c.Resolution, "resolution", c.Resolution, "training resolution (subnets are measured at their own)")
	trainRes := fs.String("train-resolutions", "", `input sizes of the fine-tuning batches, one drawn per step for every subnet of it: "elite" (the resolution genes of the subnets drawn from, as NAT draws whole subnets from the archive) or a comma-separated list; empty: --resolution only`)
	fs.IntVar(&c.Subnets, "subnets", c.Subnets, "archive-drawn subnets per step besides the largest and the smallest")
	fs.Float64Var(&c.LR, "lr", c.LR, "peak learning rate of each fine-tuning round")
	fs.Float64Var(&c.WeightDecay, "weight-decay", c.WeightDecay, "weight decay (not on BatchNorm and bias tensors)")
	fs.Float64Var(&c.LabelSmoothing, "label-smoothing", c.LabelSmoothing, "label smoothing")
	fs.Float64Var(&c.KDRatio, "kd-ratio", c.KDRatio, "weight of the distillation loss from the largest subnet (or --top)")
	fs.Float64Var(&c.CropScale, "crop-scale", c.CropScale, "smallest area fraction of the random resized crop")
	fs.IntVar(&c.Elite, "elite", c.Elite, "archive members (front by front) whose genes the fine-tuning subnets are drawn from")
	fs.Float64Var(&c.Uniform, "uniform", c.Uniform, "probability that a gene is drawn uniformly instead of from the elite")
	fs.IntVar(&c.Evals, "evals", c.Evals, "measured subnets per iteration's search (carried ones count)")
	fs.IntVar(&c.FinalEvals, "final-evals", c.FinalEvals, "measured subnets of the final search, which the task serves")
	fs.IntVar(&c.Initial, "initial", c.Initial, "random sample of each search (smallest and largest included)")
	fs.IntVar(&c.PerIteration, "per-iter", c.PerIteration, "subnets measured per surrogate iteration")
	top := fs.String("top", "", "the sandwich's top subnet instead of the largest (OFA arch JSON or @file): trained every step and the source of the others' soft targets; an imported network's own arch is the natural one")
	topSizes := fs.String("top-sizes", "", "comma-separated input sizes at which the top subnet (--top or the largest) also trains every step, on the batch resized, besides the batch's own size (e.g. every size it is served at); empty: the batch's only")
	fs.BoolVar(&c.TopKD, "top-kd", false, "with --top-sizes: the top at its largest size teaches every other pass, the top at its smaller sizes included")
	fs.Float64Var(&c.TopKDWeight, "top-kd-weight", 0, "with --top-kd: weight of the teaching pass's hard labels (1 + the kd ratio weighs it as each other pass; 0 = 1)")
	fs.IntVar(&c.Average, "average", 0, "final weights = the mean of the last N rounds' end weights (weights-0, the start, is the warm-up's end; each fine-tuning round ends at lr 0 of its cosine), measured and served instead of the last round's alone; 0 or 1: the last alone")
	seedArchs := fs.String("seed-archs", "", `archs every search measures first, as a JSON array of OFA archs or @file.json (e.g. the pretrained network's own arch at a few resolutions): they join the archive, and so the fine-tuning elite, when they are good`)
	fs.IntVar(&c.Carry, "carry", c.Carry, "best members of the previous archive re-measured first on the new weights")
	fs.IntVar(&c.CalibImages, "calib", c.CalibImages, "BatchNorm calibration images from train (stored in the task for serving)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of sampling, data order, augmentation and search")
	budgets := fs.String("budgets", "25M,50M,100M,150M,200M,300M,400M", "MAdds budgets pre-resolved on the final weights: the resolver's candidates under each are measured, so that served answers are measurements (empty: none)")
	fs.BoolVar(&c.Half, "half", c.Half, "store float16 weights; the final search measures the rounded weights")
	fs.BoolVar(&c.Latency, "latency", c.Latency, "measure onnxruntime batch-1 latency of the final archive (latency_ms budgets)")
	fs.IntVar(&c.ORTThreads, "ort-threads", c.ORTThreads, "onnxruntime intra-op threads for --latency")
	fs.IntVar(&c.Workers, "workers", 0, "image decoding goroutines (0: one per core)")
	if err := parse(fs, args, "supernet", "data", "out"); err != nil {
		return helpOK(err)
	}
	var err error
	if *top != "" {
		a, err := supernet.ReadArchArg(*top)
		if err != nil {
			return usageError{"adapt: --top: " + err.Error()}
		}
		c.Top = &a
	}
	if *topSizes != "" {
		if c.TopSizes, err = parseSizes(*topSizes); err != nil {
			return usageError{"adapt: --top-sizes: " + err.Error()}
		}
	}
	if *seedArchs != "" {
		if c.SeedArchs, err = supernet.ReadArchListArg(*seedArchs); err != nil {
			return usageError{"adapt: --seed-archs: " + err.Error()}
		}
	}
	switch *trainRes {
	case "":
	case "elite":
		c.EliteResolutions = true
	default:
		if c.TrainResolutions, err = parseSizes(*trainRes); err != nil {
			return usageError{"adapt: --train-resolutions: " + err.Error()}
		}
	}
	if c.Budgets, err = parseBudgets(*budgets); err != nil {
		return usageError{"adapt: --budgets: " + err.Error()}
	}
	if err := c.Validate(); err != nil {
		return usageError{"adapt: " + oneLine(withFlagNames(err, adaptFlags))}
	}
	res, err := nat.Run(ctx, c, progressPrinter(env.stderr, "adapt"))
	var cfgErr *nat.ConfigError
	if errors.As(err, &cfgErr) {
		return usageError{"adapt: " + oneLine(withFlagNames(cfgErr, adaptFlags))}
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(env.stdout).Encode(res)
}

// parseBudgets reads a comma-separated list of MAdds budgets ("25M,50M"); empty: none.
func parseBudgets(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := specializer.ParseCount(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// adaptFlags names nat.Config's fields by their natgw adapt flags, for error messages.
var adaptFlags = map[string]string{
	"Supernet": "--supernet", "Data": "--data", "Out": "--out", "Work": "--work", "Name": "--name",
	"Iterations": "--iterations", "Epochs": "--epochs", "Batch": "--batch", "Resolution": "--resolution",
	"TrainResolutions": "--train-resolutions", "EliteResolutions": "--train-resolutions elite", "Subnets": "--subnets",
	"LR": "--lr", "WeightDecay": "--weight-decay", "LabelSmoothing": "--label-smoothing", "KDRatio": "--kd-ratio",
	"CropScale": "--crop-scale", "Elite": "--elite", "Uniform": "--uniform", "Top": "--top", "TopSizes": "--top-sizes",
	"TopKD": "--top-kd", "TopKDWeight": "--top-kd-weight", "Average": "--average", "Evals": "--evals",
	"FinalEvals": "--final-evals", "Initial": "--initial", "PerIteration": "--per-iter", "Carry": "--carry",
	"CalibImages": "--calib", "Budgets": "--budgets", "Latency": "--latency", "ORTThreads": "--ort-threads",
	"Workers": "--workers",
}

// fieldName matches a Go identifier that may name a config field.
var fieldName = regexp.MustCompile(`\b[A-Z][A-Za-z]*\b`)

// withFlagNames rewrites the config field names in a validation error as the flags that
// set them.
func withFlagNames(err error, flags map[string]string) error {
	return errors.New(fieldName.ReplaceAllStringFunc(err.Error(), func(w string) string {
		if f, ok := flags[w]; ok {
			return f
		}
		return w
	}))
}
