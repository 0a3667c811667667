// Command measurespeed times what a gateway does to measure a candidate subnet in the
// background, with each engine for the val pass: BatchNorm rebuilt on the task's
// calibration images (the gateway's 128, batch 64, natgw's Go forward either way), then
// top-1 on the task's val images in batches of 16, through natgw's Go forward or through
// onnxruntime (the subnet exported, a session of its own). One core, as the gateway's
// default --measure-workers. The subnets are uniform archs the archive does not hold, from
// small to large; each is measured by both engines, alternately. Prints one JSON line per
// subnet and engine: seconds for the whole measurement and for the val pass alone (measured
// again on the calibrated subnet), and top-1.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/natgw/natgw/gateway"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/specializer"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "measurespeed:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("task", "models/flowers", "task folder")
	rounds := flag.Int("rounds", 1, "times each subnet is measured by each engine")
	flag.Parse()
	t, err := task.Load(*dir)
	if err != nil {
		return err
	}
	val, err := t.ValImages()
	if err != nil {
		return err
	}
	env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: 1, InterOpThreads: 1, Spin: onnxrt.SpinNever})
	if err != nil {
		return err
	}
	ctx := context.Background()
	engines := []struct {
		name    string
		forward specializer.ForwardMaker
	}{{"go", nil}, {"onnxruntime", gateway.ONNXForward(env)}}
	spec := t.Supernet.Spec
	rs := spec.Resolutions
	archs := []supernet.Arch{
		spec.Uniform(3, 3, 2, rs[0]),
		spec.Uniform(5, 4, 3, rs[len(rs)/3]),
		spec.Uniform(5, 6, 3, rs[2*len(rs)/3]),
		spec.Uniform(7, 6, 4, rs[len(rs)-1]),
	}
	enc := json.NewEncoder(os.Stdout)
	for round := range *rounds {
		for _, a := range archs {
			for _, eng := range engines {
				// A fresh evaluator per measurement: nothing cached, as for a gateway's candidate.
				ev, err := specializer.NewSubnetEvaluator(ctx, specializer.EvalConfig{
					Supernet: t.Supernet, Template: t.Manifest.Preprocess, Crops: t.CropByResolution,
					Calib: t.Calib, CalibImages: 128, Val: val, Workers: 1,
					MaxTensorBytes: 1, EvalBatch: 16, Forward: eng.forward,
				})
				if err != nil {
					return err
				}
				t0 := time.Now()
				e, sub, err := ev.EvaluateSubnet(ctx, a)
				if err != nil {
					return err
				}
				whole := time.Since(t0).Seconds()
				t1 := time.Now()
				if _, err := ev.Top1(ctx, sub); err != nil {
					return err
				}
				valPass := time.Since(t1).Seconds()
				enc.Encode(map[string]any{"task": t.Name, "round": round + 1, "engine": eng.name, "madds": e.MAdds, "r": a.R,
					"measure_s": round3(whole), "val_pass_s": round3(valPass), "val_images": len(val), "top1": e.Top1})
			}
		}
	}
	return nil
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
