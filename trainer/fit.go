package trainer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/supernet"
)

// Data is what Fit reads: augmented training batches, and for validation the validation
// set and calibration images (both with eval preprocessing, at the training resolution).
// Val and Calib may be nil: no validation then.
type Data struct {
	Train *dataset.Loader // its batch size must be Config.Batch, DropLast set
	Val   *dataset.Loader
	Calib *dataset.Loader // BatchNorm statistics are re-estimated on one pass of it
}

// Eval is a validation result of one subnet.
type Eval struct {
	Step     int     `json:"step"`
	Subnet   string  `json:"subnet"` // "largest" or "smallest"
	Accuracy float64 `json:"accuracy"`
	Loss     float64 `json:"loss"`
	Images   int     `json:"images"`
}

// Result summarises a Fit call.
type Result struct {
	Steps        int     `json:"steps"`     // optimizer steps taken in all (including resumed ones)
	StepsRun     int     `json:"steps_run"` // steps taken by this call
	Images       int64   `json:"images"`    // training images consumed by this call
	ImagesPerSec float64 `json:"images_per_sec"`
	FinalLoss    float64 `json:"final_loss"` // mean sandwich loss over the last up to 20 steps
	FirstLoss    float64 `json:"first_loss"` // mean sandwich loss over the first up to 20 steps of this call
	Evals        []Eval  `json:"evals,omitempty"`
}

// TotalSteps is the planned number of steps for a training set of batchesPerEpoch batches.
func (t *Trainer) TotalSteps(batchesPerEpoch int) int {
	total := t.cfg.Epochs * batchesPerEpoch
	if t.cfg.MaxSteps > 0 && (total == 0 || t.cfg.MaxSteps < total) {
		total = t.cfg.MaxSteps
	}
	return total
}

// Fit trains until the planned number of steps, continuing from StepCount (after
// Resume). It validates every ValEvery steps and at the end, writes the resumable state to
// Checkpoint every CheckpointEvery steps and at the end, and reports progress.
func (t *Trainer) Fit(ctx context.Context, d Data) (Result, error) {
	var res Result
	if d.Train == nil {
		return res, errors.New("trainer: no training data")
	}
	spe := d.Train.NumBatches()
	total := t.TotalSteps(spe)
	if spe == 0 || total == 0 {
		return res, fmt.Errorf("trainer: nothing to do (%d batches per epoch, %d steps)", spe, total)
	}
	start := time.Now()
	lastLog := start
	every := t.cfg.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	var losses []float64
	var emaLoss, emaAcc float64
	stop := errors.New("done")
	for epoch := t.step / spe; t.step < total; epoch++ {
		skip := t.step - epoch*spe // batches of this epoch already trained before a resume
		bi := -1
		err := d.Train.Epoch(ctx, epoch, func(b dataset.Batch) error {
			bi++
			if bi < skip {
				return nil
			}
			r := cmp.Or(b.R, t.cfg.Resolution) // elastic-resolution loaders size each batch
			if len(b.X) != b.N*3*r*r {
				return fmt.Errorf("trainer: batch has %d values for %d images at %d px", len(b.X), b.N, r)
			}
			s := t.step
			sr, err := t.Step(ctx, b.X, r, b.Labels, t.cfg.lrAt(s, total))
			if err != nil {
				return err
			}
			res.StepsRun++
			res.Images += int64(b.N)
			losses = append(losses, sr.Loss)
			if res.StepsRun == 1 {
				emaLoss, emaAcc = sr.Loss, sr.LargestAcc
			}
			emaLoss = 0.9*emaLoss + 0.1*sr.Loss
			emaAcc = 0.9*emaAcc + 0.1*sr.LargestAcc
			if t.cfg.OnStep != nil {
				t.cfg.OnStep(t.step, total, sr.Loss)
			}
			now := time.Now()
			if t.cfg.Progress != nil && (now.Sub(lastLog) >= every || t.step == total || res.StepsRun == 1) {
				lastLog = now
				el := now.Sub(start).Seconds()
				ips := float64(res.Images) / el
				eta := time.Duration(float64(total-t.step) * el / float64(res.StepsRun) * float64(time.Second)).Round(time.Second)
				fmt.Fprintf(t.cfg.Progress, "step %d/%d epoch %d loss %.4f (avg %.4f) acc %.3f lr %.5f images/s %.1f eta %s\n",
					t.step, total, epoch, sr.Loss, emaLoss, emaAcc, sr.LearningRate, ips, eta)
			}
			if t.cfg.ValEvery > 0 && t.step%t.cfg.ValEvery == 0 && t.step < total && d.Val != nil {
				name, arch := "largest", t.sn.Spec.Largest()
				if t.cfg.Fixed != nil {
					name, arch = "fixed", *t.cfg.Fixed
				}
				ev, err := t.validate(ctx, d, name, arch)
				if err != nil {
					return err
				}
				res.Evals = append(res.Evals, ev)
			}
			if t.cfg.Checkpoint != "" && t.cfg.CheckpointEvery > 0 && t.step%t.cfg.CheckpointEvery == 0 && t.step < total {
				if err := t.SaveState(t.cfg.Checkpoint); err != nil {
					return err
				}
			}
			if t.step >= total {
				return stop
			}
			return nil
		})
		if errors.Is(err, stop) {
			break
		}
		if err != nil {
			return res, err
		}
	}
	res.Steps = t.step
	if el := time.Since(start).Seconds(); el > 0 {
		res.ImagesPerSec = float64(res.Images) / el
	}
	res.FinalLoss = meanTail(losses, 20, false)
	res.FirstLoss = meanTail(losses, 20, true)
	if d.Val != nil {
		type named struct {
			name string
			arch supernet.Arch
		}
		subs := []named{{"largest", t.sn.Spec.Largest()}, {"smallest", t.smallest()}}
		if t.cfg.Fixed != nil {
			subs = []named{{"fixed", *t.cfg.Fixed}}
		}
		for _, sub := range subs {
			ev, err := t.validate(ctx, d, sub.name, sub.arch)
			if err != nil {
				return res, err
			}
			res.Evals = append(res.Evals, ev)
		}
	}
	if t.cfg.Checkpoint != "" {
		if err := t.SaveState(t.cfg.Checkpoint); err != nil {
			return res, err
		}
	}
	return res, nil
}

// meanTail is the mean of the last (or first) up to k values.
func meanTail(v []float64, k int, head bool) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	k = min(k, len(v))
	w := v[len(v)-k:]
	if head {
		w = v[:k]
	}
	s := 0.0
	for _, x := range w {
		s += x
	}
	return s / float64(k)
}

// Validate measures a subnet on the validation set after re-estimating its BatchNorm
// statistics on the calibration images (OFA's set_running_statistics), without touching
// the supernet's own statistics.
func (t *Trainer) Validate(ctx context.Context, d Data, arch supernet.Arch) (Eval, error) {
	return t.validate(ctx, d, "", arch)
}

func (t *Trainer) validate(ctx context.Context, d Data, name string, arch supernet.Arch) (Eval, error) {
	ev := Eval{Step: t.step, Subnet: name}
	if d.Val == nil {
		return ev, errors.New("trainer: no validation data")
	}
	a := arch
	a.R = t.sn.Spec.Resolutions[0] // training runs at the data's resolution, whatever the spec lists
	sub, err := t.sn.Extract(a)
	if err != nil {
		return ev, fmt.Errorf("trainer: validate: %w", err)
	}
	r := t.cfg.Resolution
	if d.Calib != nil {
		err := sub.Recalibrate(ctx, func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
			return d.Calib.Epoch(ctx, 0, func(b dataset.Batch) error { return fn(b.X, b.N, r, r) })
		})
		if err != nil {
			return ev, fmt.Errorf("trainer: validate: %w", err)
		}
	}
	net := sub.Compile()
	k := t.sn.Spec.Classes
	var hit int
	var loss float64
	err = d.Val.Epoch(ctx, 0, func(b dataset.Batch) error {
		logits, err := net.Forward(ctx, b.X, b.N, r, r)
		if err != nil {
			return err
		}
		p := softmax(logits, k)
		for i, l := range b.Labels {
			if l < 0 || l >= k {
				return fmt.Errorf("label %d outside [0,%d)", l, k)
			}
			loss -= math.Log(math.Max(float64(p[i*k+l]), 1e-30))
		}
		hit += int(math.Round(accuracy(logits, b.Labels, k) * float64(b.N)))
		ev.Images += b.N
		return nil
	})
	if err != nil {
		return ev, fmt.Errorf("trainer: validate: %w", err)
	}
	if ev.Images > 0 {
		ev.Accuracy = float64(hit) / float64(ev.Images)
		ev.Loss = loss / float64(ev.Images)
	}
	if t.cfg.Progress != nil {
		fmt.Fprintf(t.cfg.Progress, "validate step %d %s: accuracy %.4f loss %.4f (%d images)\n", t.step, name, ev.Accuracy, ev.Loss, ev.Images)
	}
	return ev, nil
}
