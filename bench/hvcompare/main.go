// Command hvcompare measures NAT's search against random search on a real supernet and task,
// with the same evaluator (BatchNorm recalibration on train, top-1 on val): NAT with N true
// evaluations, random search with N and with 10N, each front's hypervolume (top-1 error vs
// MAdds, fixed reference point) printed as JSON. The supernet must carry a head for the data
// set's classes, in the data set's class order.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hvcompare:", err)
		os.Exit(1)
	}
}

func run() error {
	ckpt := flag.String("supernet", "", "supernet checkpoint with a head for the data set's classes")
	data := flag.String("data", "", "image-folder data set with train/ and val/")
	n := flag.Int("evals", 10, "N: NAT's true evaluations; random search gets N and 10N")
	seed := flag.Uint64("seed", 1, "seed of NAT and of the random sample")
	calib := flag.Int("calib", 200, "calibration images from train")
	mean := flag.Float64("mean", 0.5, "normalisation mean (all channels) when the checkpoint records none")
	std := flag.Float64("std", 0.5, "normalisation std (all channels) when the checkpoint records none")
	ignoreMeta := flag.Bool("ignore-meta", false, "use --mean/--std even when the checkpoint records its preprocessing")
	flag.Parse()
	ctx := context.Background()
	sn, err := supernet.Load(*ckpt, supernet.LoadOptions{})
	if err != nil {
		return err
	}
	pp := preprocess.DefaultSpec(0)
	pp.Mean = [3]float32{float32(*mean), float32(*mean), float32(*mean)}
	pp.Std = [3]float32{float32(*std), float32(*std), float32(*std)}
	if !*ignoreMeta {
		// The checkpoint's own normalisation (an imported or adapted network records it).
		if pp, err = preprocess.FromMeta(sn.Meta, 0, pp); err != nil {
			return err
		}
	}
	ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
		Supernet: sn, Data: *data, Template: pp, CalibImages: *calib, CalibSeed: *seed,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	spec := sn.Spec
	lo, _ := specializer.CountArch(spec, spec.Smallest())
	hi, _ := specializer.CountArch(spec, spec.Largest())
	start := time.Now()
	nat := &task.Archive{}
	if err := specializer.Search(ctx, specializer.Config{
		Evaluator: ev, Archive: nat, Evals: *n, Seed: *seed, PerIteration: max(2, *n/4), InitialSamples: max(4, *n/2),
		Progress: os.Stderr,
	}); err != nil {
		return err
	}
	natTime := time.Since(start)
	rng := rand.New(rand.NewPCG(*seed, 99))
	var random []task.Entry
	seen := map[string]bool{}
	for len(random) < 10**n {
		a, err := spec.Canonical(specializer.RandomArch(spec, rng))
		if err != nil {
			return err
		}
		if seen[a.Hash()] {
			continue
		}
		seen[a.Hash()] = true
		e, err := ev.Evaluate(ctx, a)
		if err != nil {
			return err
		}
		random = append(random, e)
		fmt.Fprintf(os.Stderr, "random %d/%d: top1 %.4f madds %d\n", len(random), 10**n, e.Top1, e.MAdds)
	}
	out := map[string]any{
		"supernet": *ckpt, "spec": spec.Name, "data": *data, "N": *n, "seed": *seed, "calib": *calib,
		"madds_range":      []int64{lo.MAdds, hi.MAdds},
		"hv_nat_N":         specializer.Hypervolume(nat.Snapshot(), lo.MAdds, hi.MAdds),
		"hv_random_N":      specializer.Hypervolume(random[:*n], lo.MAdds, hi.MAdds),
		"hv_random_10N":    specializer.Hypervolume(random, lo.MAdds, hi.MAdds),
		"nat_seconds":      natTime.Seconds(),
		"nat_front":        task.Front(nat.Snapshot()),
		"random_10N_front": task.Front(random),
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
