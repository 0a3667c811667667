package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// searchTemplate is the eval preprocessing for --task: the task folder's task.json (with
// its per-resolution crops) when there is one, else the checkpoint's own (what natgw train
// validated it with), else the ImageNet default.
func searchTemplate(taskArg string, sn *supernet.Supernet) (task.Manifest, error) {
	data, err := os.ReadFile(filepath.Join(taskArg, task.ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		if !task.ValidName(filepath.Base(taskArg)) {
			return task.Manifest{}, fmt.Errorf("--task %q is neither a task folder nor a valid task name", taskArg)
		}
		p, err := task.SupernetPreprocess(sn, 0)
		return task.Manifest{Preprocess: p}, err
	}
	if err != nil {
		return task.Manifest{}, err
	}
	var m task.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return task.Manifest{}, fmt.Errorf("%s: %w", filepath.Join(taskArg, task.ManifestFile), err)
	}
	return m, nil
}

func cmdSearch(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "search")
	taskArg := fs.String("task", "", "task folder (its task.json gives the preprocessing) or task name")
	ckpt := fs.String("supernet", "", "the task's supernet checkpoint (OFA .pth or natgw native)")
	data := fs.String("data", "", "image-folder data set root with train/ and val/ (test/ is never read)")
	evals := fs.Int("evals", 0, "total subnets to measure, counting those already in --out")
	out := fs.String("out", "", "archive JSON; saved after every measurement, rerun to resume")
	seed := fs.Uint64("seed", 1, "search seed")
	perIter := fs.Int("per-iter", 8, "subnets measured per iteration")
	initial := fs.Int("initial", 0, "initial random sample size (0: min(100, evals/2))")
	seedArchs := fs.String("seed-archs", "", `archs measured first, before the random sample, as a JSON array of OFA archs or @file.json (e.g. the pretrained network's own arch at a few resolutions)`)
	calib := fs.Int("calib", 500, "BatchNorm calibration images from train")
	latency := fs.Bool("latency", false, "also measure each subnet's onnxruntime batch-1 latency on this machine (answers latency_ms budgets)")
	ortThreads := fs.Int("ort-threads", 2, "onnxruntime intra-op threads for --latency")
	if err := parse(fs, args, "task", "supernet", "data", "out"); err != nil {
		return helpOK(err)
	}
	if *evals < 2 || *perIter < 1 || *calib < 1 || *initial < 0 {
		return usageError{"search: --evals must be ≥ 2, --per-iter and --calib ≥ 1, --initial ≥ 0"}
	}
	var seeds []supernet.Arch
	if *seedArchs != "" {
		var err error
		if seeds, err = supernet.ReadArchListArg(*seedArchs); err != nil {
			return usageError{"search: --seed-archs: " + err.Error()}
		}
	}
	sn, err := supernet.Load(*ckpt, supernet.LoadOptions{})
	if err != nil {
		return err
	}
	tmpl, err := searchTemplate(*taskArg, sn)
	if err != nil {
		return err
	}
	archive, err := task.LoadArchive(*out, sn.Spec)
	if err != nil {
		return err
	}
	version := sn.Version()
	if archive.SupernetVersion != "" && archive.SupernetVersion != version {
		return fmt.Errorf("%s was measured with supernet %q, not %q: use another --out", *out, archive.SupernetVersion, version)
	}
	archive.SupernetVersion = version
	ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
		Supernet: sn, Data: *data, Template: tmpl.Preprocess, Crops: tmpl.CropByResolution, CalibImages: *calib, CalibSeed: *seed, Archive: archive,
	})
	if err != nil {
		return err
	}
	if n := archive.Len(); n > 0 {
		fmt.Fprintf(env.stderr, "search: resuming from %d entries in %s\n", n, *out)
	}
	cfg := specializer.Config{
		Evaluator: ev, Archive: archive, ArchivePath: *out, Evals: *evals, InitialSamples: *initial,
		PerIteration: *perIter, Seed: *seed, Progress: env.stderr, Seeds: seeds,
	}
	if *latency {
		ortEnv, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: *ortThreads, InterOpThreads: 1})
		if err != nil {
			return err
		}
		cfg.MeasureLatency = func(ctx context.Context, arch supernet.Arch) (float64, error) {
			sub, err := sn.Extract(arch)
			if err != nil {
				return 0, err
			}
			return specializer.MeasureLatency(ctx, ortEnv, sub, specializer.LatencyOptions{})
		}
	}
	err = specializer.Search(ctx, cfg)
	if err != nil {
		return err
	}
	front := task.Front(archive.Snapshot())
	fmt.Fprintf(env.stderr, "search: done, %d subnets in %s, %d on the front\n", archive.Len(), *out, len(front))
	return nil
}

// readArchiveFile reads an archive without its supernet: entries must be val
// measurements whose hash matches their arch (canonicality needs the spec and is not
// checked here).
func readArchiveFile(path string) ([]task.Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var a struct {
		SupernetVersion string       `json:"supernet_version"`
		Entries         []task.Entry `json:"entries"`
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, e := range a.Entries {
		if e.Split != task.SplitVal {
			return nil, fmt.Errorf("%s: entries[%d]: split %q, want %q", path, i, e.Split, task.SplitVal)
		}
		if e.Hash != e.Arch.Hash() {
			return nil, fmt.Errorf("%s: entries[%d]: hash does not match its arch", path, i)
		}
	}
	return a.Entries, nil
}

func cmdFront(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "front")
	taskName := fs.String("task", "", "task name (with --models)")
	models := fs.String("models", "", "folder of task folders; reads <models>/<task>/archive.json")
	archivePath := fs.String("archive", "", "archive JSON file (instead of --models)")
	plotPath := fs.String("plot", "", "write the accuracy-vs-MAdds plot here (PNG)")
	budgets := fs.String("budgets", "", "comma-separated MAdds budgets (e.g. 150M,300M) whose answers are marked on the plot")
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	path := *archivePath
	switch {
	case (*models == "") == (path == ""):
		return usageError{"front: give exactly one of --models (with --task) and --archive"}
	case *models != "":
		if !task.ValidName(*taskName) {
			return usageError{fmt.Sprintf("front: --task %q is not a valid task name", *taskName)}
		}
		path = filepath.Join(*models, *taskName, task.ArchiveFile)
	}
	entries, err := readArchiveFile(path)
	if err != nil {
		return err
	}
	var chosen []task.Entry
	if *budgets != "" {
		for _, s := range strings.Split(*budgets, ",") {
			m, err := specializer.ParseCount(s)
			if err != nil {
				return usageError{fmt.Sprintf("front: --budgets: %v", err)}
			}
			e, err := specializer.Best(entries, specializer.Budget{MAdds: m})
			if err != nil {
				return fmt.Errorf("budget %s: %w", strings.TrimSpace(s), err)
			}
			chosen = append(chosen, e)
		}
	}
	front := task.Front(entries)
	if front == nil {
		front = []task.Entry{}
	}
	out, err := json.MarshalIndent(front, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, string(out))
	if *plotPath != "" {
		return specializer.PlotFront(entries, chosen, *plotPath)
	}
	return nil
}
