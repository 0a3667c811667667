// Command mktask writes a task folder for load benchmarks: a checkpoint's supernet, generic
// labels, and an archive of seeded random subnets whose accuracies are SYNTHETIC (a smooth
// function of MAdds, marked source "synthetic-benchmark"). Serving cost does not depend on
// accuracy; never ship such a folder as a task.
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mktask:", err)
		os.Exit(1)
	}
}

func run() error {
	ckpt := flag.String("supernet", "", "supernet checkpoint")
	out := flag.String("out", "", "task folder to write")
	name := flag.String("name", "bench", "task name")
	n := flag.Int("archs", 40, "random subnets in the archive")
	seed := flag.Uint64("seed", 1, "seed")
	flag.Parse()
	sn, err := supernet.Load(*ckpt, supernet.LoadOptions{})
	if err != nil {
		return err
	}
	if sn.Meta[supernet.MetaID] == "" {
		sn.Meta[supernet.MetaID] = "bench"
	}
	spec := sn.Spec
	rng := rand.New(rand.NewPCG(*seed, 7))
	a := &task.Archive{SupernetVersion: sn.Meta[supernet.MetaID]}
	archs := []supernet.Arch{spec.Smallest(), spec.Largest()}
	for len(archs) < *n {
		x := make([]int, spec.EncodingLen())
		g := spec.GeneChoices()
		x[0] = rng.IntN(g[0])
		for st, stage := range spec.Stages {
			d := stage.Depths[rng.IntN(len(stage.Depths))]
			for pos := range d {
				x[2+spec.StageStart(st)+pos] = 1 + rng.IntN(g[2+spec.StageStart(st)+pos]-1)
			}
		}
		arch, err := spec.Decode(x)
		if err != nil {
			return err
		}
		archs = append(archs, arch)
	}
	for _, arch := range archs {
		sub, err := sn.Extract(arch)
		if err != nil {
			return err
		}
		c := sub.Count()
		top1 := 0.5 + 0.4*(1-math.Exp(-float64(c.MAdds)/150e6)) + 0.01*rng.Float64()
		a.Put(task.Entry{Arch: arch, Hash: arch.Hash(), MAdds: c.MAdds, Params: c.Params, Top1: top1,
			Split: task.SplitVal, Source: task.SourceSynthetic})
	}
	t := &task.Task{
		Manifest: task.Manifest{Name: *name, Description: "load-benchmark task with synthetic accuracies",
			Preprocess: preprocess.DefaultSpec(0)},
		Supernet: sn, Labels: exporter.DefaultLabels(spec.Classes), Archive: a,
	}
	return task.Save(*out, t, supernet.SaveOptions{})
}
