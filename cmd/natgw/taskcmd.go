package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/task"
)

// cmdTaskCalibrate stores what a task folder needs so that serving never runs a forward
// pass for its archive and can measure new subnets: the archive's BatchNorm statistics
// (bnstats.safetensors), and with --data the val split's images (val/).
func cmdTaskCalibrate(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "task calibrate")
	dir := fs.String("task", "", "task folder to complete")
	data := fs.String("data", "", "image-folder data set whose val split the archive was measured on: copied into the task folder (optional when it has val/ already)")
	verify := fs.Bool("verify", false, "re-measure every archive subnet from its stored statistics on the val images and fail unless each reproduces its archived top-1 exactly")
	if err := parse(fs, args, "task"); err != nil {
		return helpOK(err)
	}
	t, err := loadRemakingStats(env, "task calibrate", *dir)
	if err != nil {
		return err
	}
	if *data != "" {
		if err := nat.CopyVal(t, *data); err != nil {
			return err
		}
		if t, err = task.Load(*dir); err != nil {
			return err
		}
	}
	computed, err := t.StoreStats(ctx, func(done, total int, e task.Entry) {
		fmt.Fprintf(env.stderr, "task calibrate: %d/%d %s (%.0fM MAdds, %d px)\n", done, total, e.Hash[:12], float64(e.MAdds)/1e6, e.Arch.R)
	})
	if err != nil {
		return err
	}
	out := map[string]any{"task": t.Name, "calibration": t.Stats.Calibration, "stored": t.Stats.Len(), "computed": computed}
	val, err := t.ValImages()
	switch {
	case err == nil:
		out["val_images"] = len(val)
	case errors.Is(err, task.ErrNoVal):
		out["val_images"] = 0
		fmt.Fprintln(env.stderr, "task calibrate: the task has no val/ images: a server can answer from its archive but measure nothing new (give --data)")
	default:
		return err
	}
	if *verify {
		if err != nil {
			return usageError{"task calibrate: --verify needs val images (--data)"}
		}
		if out["verified"], err = verifyStats(ctx, env, t, val); err != nil {
			return err
		}
	}
	return json.NewEncoder(env.stdout).Encode(out)
}

// loadRemakingStats loads a task folder for a command that stores its statistics again: a
// statistics file made for another calibration (other weights, images or crops) is
// worthless, and is removed rather than refused.
func loadRemakingStats(env *cli, cmd, dir string) (*task.Task, error) {
	t, err := task.Load(dir)
	if !errors.Is(err, task.ErrStaleBNStats) {
		return t, err
	}
	fmt.Fprintf(env.stderr, "%s: %v: removed, computed again\n", cmd, err)
	if err := os.Remove(filepath.Join(dir, task.BNStatsFile)); err != nil {
		return nil, err
	}
	return task.Load(dir)
}

// verifyStats measures every measured archive entry from its stored statistics on the
// task's val images and reports how many reproduce their archived top-1; any other
// outcome is an error.
func verifyStats(ctx context.Context, env *cli, t *task.Task, val []task.LabeledImage) (int, error) {
	ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
		Supernet: t.Supernet, Template: t.Manifest.Preprocess, Crops: t.CropByResolution,
		Calib: t.Calib, Val: val, MaxTensorBytes: 1,
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range t.Archive.Snapshot() {
		if e.Predicted {
			continue
		}
		sub, err := t.Subnet(ctx, e)
		if err != nil {
			return n, err
		}
		top1, err := ev.Top1(ctx, sub)
		if err != nil {
			return n, err
		}
		if top1 != e.Top1 {
			return n, fmt.Errorf("task calibrate: %s measures %.6f from its stored statistics, the archive says %.6f (another BLAS kernel than the archive's? see OPENBLAS_CORETYPE)", e.Hash[:12], top1, e.Top1)
		}
		n++
		fmt.Fprintf(env.stderr, "task calibrate: verified %s: top-1 %.4f\n", e.Hash[:12], top1)
	}
	return n, nil
}

// pretrainedRel is where the ImageNet-pretrained network lies in the shared material.
const pretrainedRel = "data/pretrained-mobilenet-tflite"

// cmdTaskCreate builds a task from a labelled image folder by a recipe (package nat:
// Create): the pretrained network imported, warmed up on the data, adapted by NAT, its eval
// crops chosen on val and its front evaluated on test. Resumable from --work. Progress goes
// to stderr (a status line on a terminal, JSON lines otherwise), the result to stdout.
func cmdTaskCreate(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "task create")
	c := nat.CreateConfig{}
	fs.StringVar(&c.Name, "name", "", "task name (lower-case letters, digits, - and _)")
	fs.StringVar(&c.Data, "data", "", "image folder: train/<class>/<image>, optionally val/ and test/ alike (JPEG or PNG)")
	preset := fs.String("preset", "standard", "recipe: "+strings.Join(nat.PresetNames(), " or ")+" (natgw task create --print-recipe shows it)")
	recipe := fs.String("recipe", "", "a recipe JSON file instead of a preset (the form --print-recipe writes)")
	printRecipe := fs.Bool("print-recipe", false, "print the recipe as JSON and stop")
	fs.StringVar(&c.Out, "out", "", "task folder to write (default: models/NAME)")
	fs.StringVar(&c.Work, "work", "", "folder of every stage's resumable state (default: --out + \".work\")")
	fs.StringVar(&c.Description, "description", "", "task description for task.json")
	fs.StringVar(&c.Dataset, "dataset", "", "data set name for task.json (default: the --data folder's name)")
	fs.BoolVar(&c.SkipBad, "skip-bad", false, "go on without images that cannot be decoded (they are listed) instead of refusing the data")
	fs.BoolVar(&c.ReplicatedChroma, "replicated-chroma", false, "decode JPEG chroma by replication (Go's image/jpeg) instead of as libjpeg and browsers do: how the shipped tasks were made (scripts/reproduce-tasks.sh)")
	fs.StringVar(&c.Pretrained, "pretrained", "", "ImageNet-pretrained TensorFlow Lite MobileNetV2 (default: "+pretrainedRel+"/mobilenet_v2_1.0_224_quant.tflite in $NATGW_SHARED or ../shared)")
	fs.StringVar(&c.PretrainedLabels, "pretrained-labels", "", "its labels, one per logit (default: imagenet_labels.txt beside it)")
	fs.IntVar(&c.Workers, "workers", 0, "image decoding goroutines (0: one per core)")
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	var err error
	if *recipe != "" {
		if c.Recipe, err = nat.ReadRecipe(*recipe); err != nil {
			return usageError{"task create: --recipe: " + oneLine(err)}
		}
	} else {
		r, ok := nat.Presets[*preset]
		if !ok {
			return usageError{fmt.Sprintf("task create: --preset %q: want %s", *preset, strings.Join(nat.PresetNames(), " or "))}
		}
		c.Recipe = r
	}
	if *printRecipe {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(c.Recipe)
	}
	if c.Name == "" || c.Data == "" {
		return usageError{"task create: --name and --data are required"}
	}
	if c.Pretrained == "" {
		c.Pretrained = findPretrained()
	}
	if c.PretrainedLabels == "" && c.Pretrained != "" {
		c.PretrainedLabels = filepath.Join(filepath.Dir(c.Pretrained), "imagenet_labels.txt")
	}
	if c.Pretrained == "" {
		return usageError{"task create: no pretrained network: give --pretrained (mobilenet_v2_1.0_224_quant.tflite), or set NATGW_SHARED to the shared folder holding " + pretrainedRel}
	}
	res, err := nat.Create(ctx, c, progressPrinter(env.stderr, "task create"))
	var cfgErr *nat.ConfigError
	if errors.As(err, &cfgErr) {
		return usageError{"task create: " + oneLine(withFlagNames(cfgErr, createFlags))}
	}
	var dataErr *nat.DataError
	if errors.As(err, &dataErr) {
		return usageError{"task create: " + oneLine(err)}
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(env.stdout).Encode(res)
}

// createFlags names nat.CreateConfig's fields by their natgw task create flags.
var createFlags = map[string]string{"Name": "--name", "Data": "--data", "Pretrained": "--pretrained"}

// findPretrained looks for the pretrained network in the shared material: $NATGW_SHARED,
// then ../shared beside the working folder.
func findPretrained() string {
	var roots []string
	if s := os.Getenv("NATGW_SHARED"); s != "" {
		roots = append(roots, s)
	}
	roots = append(roots, filepath.Join("..", "shared"))
	for _, r := range roots {
		p := filepath.Join(r, pretrainedRel, "mobilenet_v2_1.0_224_quant.tflite")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
