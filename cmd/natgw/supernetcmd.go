package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/natgw/natgw/nat"
	"github.com/natgw/natgw/supernet"
)

func cmdSupernetConvert(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "supernet convert")
	in := fs.String("in", "", "checkpoint to read (OFA .pth zip/legacy, or natgw native)")
	out := fs.String("out", "", "checkpoint to write: natgw native (safetensors with the spec embedded), or OFA's torch.save zip layout when the name ends in .pth or .pt")
	half := fs.Bool("half", false, "store weights as float16 (native format only)")
	specName := fs.String("spec", "", "force a built-in spec for .pth input (default: inferred from shapes)")
	id := fs.String("id", "", "supernet id to record in the metadata")
	version := fs.String("version", "", "supernet version to record in the metadata")
	if err := parse(fs, args, "in", "out"); err != nil {
		return helpOK(err)
	}
	opt := supernet.LoadOptions{SpecName: *specName}
	sn, err := supernet.Load(*in, opt)
	if err != nil {
		return err
	}
	if *id != "" {
		sn.Meta[supernet.MetaID] = *id
	}
	if *version != "" {
		sn.Meta[supernet.MetaVersion] = *version
	}
	if strings.HasSuffix(*out, ".pth") || strings.HasSuffix(*out, ".pt") {
		if *half {
			return usageError{"supernet convert: --half applies to the native format only"}
		}
		if err := sn.SaveTorch(*out); err != nil {
			return err
		}
	} else if err := sn.Save(*out, supernet.SaveOptions{Half: *half}); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "wrote %s: spec %s, %d tensors, %d values\n", *out, sn.Spec.Name, len(sn.Params()), sn.NumParams())
	return nil
}

func cmdSupernetInfo(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "supernet info")
	in := fs.String("supernet", "", "checkpoint")
	if err := parse(fs, args, "supernet"); err != nil {
		return helpOK(err)
	}
	sn, err := supernet.Load(*in, supernet.LoadOptions{})
	if err != nil {
		return err
	}
	small, _ := sn.Extract(sn.Spec.Smallest())
	large, _ := sn.Extract(sn.Spec.Largest())
	b, err := json.Marshal(map[string]any{
		"spec": sn.Spec, "meta": sn.Meta, "tensors": len(sn.Params()), "values": sn.NumParams(),
		"smallest": map[string]any{"arch": sn.Spec.Smallest(), "counts": small.Count()},
		"largest":  map[string]any{"arch": sn.Spec.Largest(), "counts": large.Count()},
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, string(b))
	return nil
}

// cmdSupernetAverage writes the element-wise mean of checkpoints of one spec: stochastic
// weight averaging of one run's snapshots, e.g. the ends of its learning-rate cycles.
func cmdSupernetAverage(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "supernet average")
	in := fs.String("in", "", "comma-separated checkpoints of one spec (the last one's metadata is kept)")
	out := fs.String("out", "", "native checkpoint to write")
	half := fs.Bool("half", false, "store weights as float16")
	if err := parse(fs, args, "in", "out"); err != nil {
		return helpOK(err)
	}
	paths := strings.Split(*in, ",")
	if len(paths) < 2 {
		return usageError{"supernet average: --in needs two or more checkpoints"}
	}
	sns := make([]*supernet.Supernet, 0, len(paths))
	for i, p := range paths {
		paths[i] = strings.TrimSpace(p)
		sn, err := supernet.Load(paths[i], supernet.LoadOptions{})
		if err != nil {
			return err
		}
		sns = append(sns, sn)
	}
	avg, err := supernet.Average(sns...)
	if err != nil {
		return err
	}
	avg.Meta["averaged_from"] = strings.Join(paths, ",")
	if *half {
		// Archives key measurements by version: stamp the rounded tensors', as adapt does.
		if avg, err = nat.RoundHalf(avg); err != nil {
			return err
		}
	}
	avg.StampVersion() // not the last input's any more
	if err := avg.Save(*out, supernet.SaveOptions{Half: *half}); err != nil {
		return err
	}
	fmt.Fprintf(env.stderr, "wrote %s: the mean of %d checkpoints, spec %s\n", *out, len(sns), avg.Spec.Name)
	return nil
}
