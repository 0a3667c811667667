package nat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/natgw/natgw/importer"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// CreateConfig is one natgw task create: a data set in, a served task folder out.
type CreateConfig struct {
	Name string // task name
	// Data holds train/<class>/<image>, optionally val/ and test/ alike.
	Data        string
	Recipe      Recipe
	Out         string // task folder; default models/<Name>
	Work        string // resumable state of every stage; default Out + ".work"
	Description string // for task.json
	Dataset     string // data set name for task.json; default Data's base name
	SkipBad     bool   // go on without images that cannot be decoded
	// ReplicatedChroma decodes JPEG chroma by replication instead of as libjpeg does
	// (ImportConfig.ReplicatedChroma): to rebuild the shipped tasks, made that way.
	ReplicatedChroma bool
	// Pretrained is the ImageNet-pretrained TensorFlow Lite MobileNetV2 and its labels.
	Pretrained, PretrainedLabels string
	Workers                      int // image decoding goroutines; 0: one per core
}

// Create stages, in order.
const (
	StageData    = "data"    // check the data set, slice val from train when it has none
	StageImport  = "import"  // the pretrained network as the supernet's largest subnet
	StageWarmUp  = "warm-up" // train the whole supernet on the task
	StageAdapt   = "adapt"   // NAT's rounds (Run): its events keep their own stages
	StageCrops   = "crops"   // the eval crop per input size, chosen on val
	StageTest    = "test"    // the front measured on the test split, recorded
	createStages = 6
)

// CreateResult is what Create made.
type CreateResult struct {
	Task   string        `json:"task"`
	Data   DataReport    `json:"data"`
	Adapt  Result        `json:"adapt"`
	Crops  []CropChoice  `json:"crops,omitempty"`
	Test   []EvalRow     `json:"test,omitempty"`
	Stages []StageResult `json:"stages"`
}

// StageResult is one stage's outcome: how long it ran this time (0: done in an earlier run).
type StageResult struct {
	Stage   string        `json:"stage"`
	Took    time.Duration `json:"took_ns"`
	Resumed bool          `json:"resumed,omitempty"` // found done on disk
}

// Create builds a task from a data set by a recipe, every stage resumable from c.Work: a
// rerun after a kill skips what is done and continues what is not, to the same files.
// progress gets every stage's events, their Stage prefixed by the create stage
// ("adapt/search") and their ETA and Fraction those of the whole run.
func Create(ctx context.Context, c CreateConfig, progress Progress) (CreateResult, error) {
	if err := c.fill(); err != nil {
		return CreateResult{}, err
	}
	if err := os.MkdirAll(c.Work, 0o755); err != nil {
		return CreateResult{}, err
	}
	p := newPipeline(progress)
	var res CreateResult
	stage := func(name string, marker string, run func() error) error {
		p.begin(name)
		defer p.end(name)
		if marker != "" && exists(marker) {
			res.Stages = append(res.Stages, StageResult{Stage: name, Resumed: true})
			p.say(name, "done in an earlier run")
			return nil
		}
		t0 := time.Now()
		if err := run(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		res.Stages = append(res.Stages, StageResult{Stage: name, Took: time.Since(t0)})
		return nil
	}
	r := c.Recipe
	var err error
	// Data: always checked (cheap next to the rest, and the view is needed again).
	err = stage(StageData, "", func() error {
		res.Data, err = CheckData(ctx, DataConfig{Root: c.Data, Work: c.Work, MinPerClass: r.MinPerClass,
			ValFraction: r.ValFraction, ValSeed: r.Seed, SkipBad: c.SkipBad})
		if err != nil {
			return err
		}
		for _, w := range res.Data.Warnings {
			p.say(StageData, "warning: "+w)
		}
		p.say(StageData, fmt.Sprintf("%d classes: %d train, %d val, %d test images", len(res.Data.Classes), res.Data.Train, res.Data.Val, res.Data.Test))
		return nil
	})
	if err != nil {
		return res, err
	}
	data := res.Data.Data
	p.plan(r, res.Data)
	imported := filepath.Join(c.Work, "imported.safetensors")
	err = stage(StageImport, imported, func() error {
		var rep *importer.Report
		rep, err = Import(ctx, ImportConfig{
			Model: c.Pretrained, Labels: c.PretrainedLabels, Calib: filepath.Join(data, "train"), Out: imported,
			CalibImages: r.ImportImages, Resolution: r.ImportResolution, ID: "mobilenet_v2_1.0_224_quant",
			ReplicatedChroma: c.ReplicatedChroma,
			Progress:         func(line string) { p.say(StageImport, line) },
		})
		if err == nil {
			p.say(StageImport, fmt.Sprintf("imported: %d BatchNorm layers rebuilt on %d images", rep.Convs, rep.CalibImages))
		}
		return err
	})
	if err != nil {
		return res, err
	}
	sn, err := supernet.Load(imported, supernet.LoadOptions{})
	if err != nil {
		return res, err
	}
	topArch := func(t Top) *supernet.Arch {
		if t.Resolution == 0 {
			return nil
		}
		a := importer.SourceArch(sn.Spec, 3, t.Resolution)
		return &a
	}
	warm := filepath.Join(c.Work, "warm.safetensors")
	err = stage(StageWarmUp, warm, func() error {
		w := r.WarmUp
		tc := DefaultTrainConfig()
		tc.Supernet, tc.Data, tc.Out = imported, data, warm
		tc.Resolution, tc.Resolutions, tc.Batch, tc.Epochs, tc.Subnets = w.Resolution, w.Resolutions, w.Batch, w.Epochs, w.Subnets
		tc.LR, tc.WeightDecay, tc.Dropout, tc.CropScale, tc.CalibImages, tc.HeadStd = w.LR, w.WeightDecay, w.Dropout, w.CropScale, w.CalibImages, w.HeadStd
		tc.Top, tc.TopSizes, tc.TopKD, tc.TopKDWeight = topArch(w.Top), w.Top.Sizes, w.Top.KD, w.Top.KDWeight
		tc.Seed, tc.Workers = r.Seed, c.Workers
		tc.OnStep = func(step, total int, loss float64) {
			p.step(StageWarmUp, step, total, fmt.Sprintf("step %d/%d loss %.4f", step, total, loss))
		}
		_, err := Train(ctx, tc)
		return err
	})
	if err != nil {
		return res, err
	}
	archive := filepath.Join(c.Out, task.ArchiveFile)
	err = stage(StageAdapt, archive, func() error {
		a := r.Adapt
		ac := DefaultConfig()
		ac.Supernet, ac.Data, ac.Out, ac.Work = warm, data, c.Out, filepath.Join(c.Work, "adapt")
		ac.Name, ac.Description, ac.Dataset = c.Name, c.Description, c.Dataset
		ac.Resolution, ac.Iterations, ac.Epochs, ac.LR = a.Resolution, a.Iterations, a.Epochs, a.LR
		ac.Evals, ac.FinalEvals, ac.CalibImages = a.Evals, a.FinalEvals, a.CalibImages
		ac.TrainResolutions, ac.Average, ac.Latency, ac.Budgets = a.TrainResolutions, a.Average, a.Latency, a.Budgets
		ac.Top, ac.TopSizes, ac.TopKD, ac.TopKDWeight = topArch(a.Top), a.Top.Sizes, a.Top.KD, a.Top.KDWeight
		for _, s := range a.SeedSizes {
			ac.SeedArchs = append(ac.SeedArchs, importer.SourceArch(sn.Spec, 3, s))
		}
		ac.Seed, ac.Workers = r.Seed, c.Workers
		var err error
		res.Adapt, err = Run(ctx, ac, p.wrap(StageAdapt))
		return err
	})
	if err != nil {
		return res, err
	}
	if err := recordValSlice(c.Out, res.Data.ValFromTrain); err != nil {
		return res, err
	}
	cropsDone := filepath.Join(c.Work, "crops.json")
	if len(r.Crops) > 0 {
		err = stage(StageCrops, cropsDone, func() error {
			choices, err := ChooseCrops(ctx, CropConfig{Task: c.Out, Data: data, Crops: r.Crops, Log: filepath.Join(c.Work, "tune-crop.jsonl"), Write: true},
				func(row CropRow, done, total int, eta time.Duration) {
					p.step(StageCrops, done, total, fmt.Sprintf("%s at %d px, crop %g: val top-1 %.4f", row.Hash[:12], row.R, row.Crop, row.Top1))
				})
			if err != nil {
				return err
			}
			res.Crops = choices
			return writeJSONFile(cropsDone, choices)
		})
		if err != nil {
			return res, err
		}
	}
	testDone := filepath.Join(c.Work, "test.json")
	if res.Data.Test > 0 {
		err = stage(StageTest, testDone, func() error {
			rows, err := Evaluate(ctx, EvaluateConfig{Task: c.Out, Data: c.Data, Split: task.SplitTest, Record: true},
				func(row EvalRow, _ time.Duration) {
					p.say(StageTest, fmt.Sprintf("%s at %.0fM MAdds, %d px: test top-1 %.4f (val %.4f)", row.Hash[:12], float64(row.MAdds)/1e6, row.R, row.Top1, row.ValTop1))
				})
			if err != nil {
				return err
			}
			res.Test = rows
			return writeJSONFile(testDone, rows)
		})
		if err != nil {
			return res, err
		}
	}
	t, err := task.Load(c.Out)
	if err != nil {
		return res, err
	}
	entries := t.Archive.Snapshot()
	res.Task = c.Out
	res.Adapt.Task, res.Adapt.Archive, res.Adapt.Front = c.Out, entries, task.Front(entries)
	p.finish(fmt.Sprintf("task %q in %s: %d measured subnets, %d on the front", c.Name, c.Out, len(entries), len(res.Adapt.Front)))
	return res, nil
}

// fill checks the configuration and fills its defaults.
func (c *CreateConfig) fill() error {
	var errs []error
	if !task.ValidName(c.Name) {
		errs = append(errs, fmt.Errorf("Name %q: not a task name (lower-case letters, digits, - and _, at most 63)", c.Name))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("Data: no data set given"))
	}
	if c.Pretrained == "" || c.PretrainedLabels == "" {
		errs = append(errs, errors.New("Pretrained: no pretrained network given"))
	}
	if err := c.Recipe.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return &ConfigError{errors.Join(errs...)}
	}
	if c.Out == "" {
		c.Out = filepath.Join("models", c.Name)
	}
	if c.Work == "" {
		c.Work = filepath.Clean(c.Out) + ".work"
	}
	if c.Dataset == "" {
		c.Dataset = filepath.Base(filepath.Clean(c.Data))
	}
	return nil
}

// recordValSlice writes into task.json that its val split was sliced from train.
func recordValSlice(dir string, v *task.ValSlice) error {
	if v == nil {
		return nil
	}
	t, err := task.Load(dir)
	if err != nil {
		return err
	}
	if t.ValFrom != nil && *t.ValFrom == *v {
		return nil
	}
	m := t.Manifest
	m.ValFrom = v
	return task.SaveManifest(dir, m)
}

func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// pipeline reports Create's progress: each stage's events with the stage's name, the
// fraction and ETA of the whole run from the work left (training steps and measurements,
// priced at this run's rates).
type pipeline struct {
	fn    Progress
	begun time.Time
	index int
	name  string
	// plan: training steps and measurements of each stage still to come.
	left map[string][2]float64 // stage → {steps, measurements}
	// rates: seconds per training step and per measurement seen in this run.
	stepSecs, measureSecs float64
	steps, measures       int
	lastAt                time.Time
	lastStage             string
	lastDone              int
	inner                 Event // the adaptation's latest event
	// measureInSteps prices a measurement in training steps before both were seen: its
	// forward passes (calibration and val images) against a step's (each of its subnet
	// passes over a batch, a backward pass counted twice a forward one).
	measureInSteps float64
}

func newPipeline(fn Progress) *pipeline {
	return &pipeline{fn: fn, begun: time.Now(), left: map[string][2]float64{}}
}

// plan estimates each stage's work from the recipe and the data.
func (p *pipeline) plan(r Recipe, d DataReport) {
	passes := float64(2+r.WarmUp.Subnets+len(r.WarmUp.Top.Sizes)) * 3 * float64(max(1, r.WarmUp.Batch))
	p.measureInSteps = float64(r.Adapt.CalibImages+d.Val) / passes
	perEpoch := float64(d.Train / max(1, r.WarmUp.Batch))
	p.left[StageWarmUp] = [2]float64{float64(r.WarmUp.Epochs) * perEpoch, 0}
	a := r.Adapt
	p.left[StageAdapt] = [2]float64{float64(a.Iterations*a.Epochs) * float64(d.Train/max(1, 32)),
		float64(a.Iterations*a.Evals + a.FinalEvals)}
	if len(r.Crops) > 0 {
		p.left[StageCrops] = [2]float64{0, float64(a.FinalEvals * len(r.Crops))}
	}
	if d.Test > 0 && d.Val > 0 {
		// The front (about a third of the final archive) on test, each like a val measurement
		// scaled by the split's size.
		p.left[StageTest] = [2]float64{0, float64(a.FinalEvals) / 3 * float64(d.Test) / float64(d.Val)}
	}
}

func (p *pipeline) begin(name string) {
	p.index++
	p.name = name
	p.lastStage, p.lastDone = "", 0
	p.emit(Event{Stage: name, Message: fmt.Sprintf("stage %d/%d: %s", p.index, createStages, name)})
}

// end marks a stage's work done.
func (p *pipeline) end(name string) {
	delete(p.left, name)
	p.inner = Event{}
}

func (p *pipeline) say(stage, msg string) { p.emit(Event{Stage: stage, Message: msg}) }

// step reports done of total units of a counted stage (warm-up steps, crop measurements).
func (p *pipeline) step(stage string, done, total int, msg string) {
	now := time.Now()
	if p.lastStage == stage && done > p.lastDone {
		d := now.Sub(p.lastAt).Seconds() / float64(done-p.lastDone)
		if stage == StageWarmUp {
			p.stepSecs, p.steps = p.stepSecs+d, p.steps+1
		} else {
			p.measureSecs, p.measures = p.measureSecs+d, p.measures+1
		}
	}
	p.lastAt, p.lastStage, p.lastDone = now, stage, done
	w := p.left[stage]
	if stage == StageWarmUp {
		w[0] = float64(total - done)
	} else {
		w[1] = float64(total - done)
	}
	p.left[stage] = w
	p.emit(Event{Stage: stage, Done: done, Total: total, Message: msg})
}

// wrap passes the adaptation's events on, its stages prefixed, its rates learnt.
func (p *pipeline) wrap(stage string) Progress {
	return func(e Event) {
		p.inner = e
		if e.Total > 0 {
			now := time.Now()
			key := stage + "/" + e.Stage
			if p.lastStage == key && e.Done > p.lastDone {
				d := now.Sub(p.lastAt).Seconds() / float64(e.Done-p.lastDone)
				if e.Stage == StageFineTune {
					p.stepSecs, p.steps = p.stepSecs+d, p.steps+1
				} else {
					p.measureSecs, p.measures = p.measureSecs+d, p.measures+1
				}
			}
			p.lastAt, p.lastStage, p.lastDone = now, key, e.Done
		}
		e.Stage = stage + "/" + e.Stage
		p.emit(e)
	}
}

func (p *pipeline) finish(msg string) {
	for k := range p.left {
		delete(p.left, k)
	}
	p.inner = Event{}
	p.emit(Event{Stage: "done", Message: msg})
}

// rates are the seconds a training step and a measurement take in this run; one priced by
// the other until it was seen (both 0 before either).
func (p *pipeline) rates() (step, measure float64) {
	if p.steps > 0 {
		step = p.stepSecs / float64(p.steps)
	}
	if p.measures > 0 {
		measure = p.measureSecs / float64(p.measures)
	}
	switch {
	case step == 0 && measure == 0:
	case measure == 0:
		measure = step * p.measureInSteps
	case step == 0 && p.measureInSteps > 0:
		step = measure / p.measureInSteps
	}
	return step, measure
}

// emit completes an event with the whole run's elapsed time, ETA and fraction.
func (p *pipeline) emit(e Event) {
	if p.fn == nil {
		return
	}
	e.Elapsed = time.Since(p.begun)
	stepSecs, measureSecs := p.rates()
	left, known := 0.0, true
	for stage, w := range p.left {
		if stage == StageAdapt && p.inner.Stage != "" && p.name == StageAdapt {
			if p.inner.ETA > 0 {
				left += p.inner.ETA.Seconds()
			} else {
				known = false
			}
			continue
		}
		if w[0] > 0 || w[1] > 0 {
			if stepSecs == 0 {
				known = false
				continue
			}
			left += w[0]*stepSecs + w[1]*measureSecs
		}
	}
	if known {
		e.ETA = time.Duration(left * float64(time.Second))
		if el := e.Elapsed.Seconds(); el+left > 0 {
			e.Fraction = el / (el + left)
		}
	}
	if e.Stage == "done" {
		e.ETA, e.Fraction = 0, 1
	}
	p.fn(e)
}
