package nat

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

// Config is one NAT adaptation: a supernet (the imported network, warmed up on the task)
// and an image-folder data set in, a servable task folder out.
type Config struct {
	Supernet string // checkpoint to adapt (natgw native or OFA .pth); its head is re-initialised when the class count differs
	Data     string // image-folder data set with train/ and val/ (test/ is never read)
	Out      string // task folder to write
	Work     string // resumable state of every round; default Out + ".work"

	Name        string // task name; default Out's base name
	Description string // for task.json
	Dataset     string // data set name for task.json; default Data's base name

	// Rounds: Iterations of search then fine-tuning, then the final search.
	Iterations int
	Epochs     int // fine-tuning epochs per round
	Batch      int // images per training step
	Resolution int // training resolution (subnets are measured at their own)
	// TrainResolutions are the input sizes of the fine-tuning batches, one drawn per step
	// (nil: Resolution only); EliteResolutions draws them from the elite's resolution genes.
	TrainResolutions []int
	EliteResolutions bool
	Subnets          int     // archive-drawn subnets per step besides the largest and the smallest
	LR               float64 // peak learning rate of each round
	WeightDecay      float64 // not on BatchNorm and bias tensors
	LabelSmoothing   float64
	KDRatio          float64 // weight of the distillation loss from the top subnet
	CropScale        float64 // smallest area fraction of the random resized crop
	Elite            int     // archive members (front by front) the fine-tuning subnets are drawn from
	Uniform          float64 // probability that a gene is drawn uniformly instead of from the elite
	// Top is the sandwich's top subnet instead of the largest; TopSizes the sizes it also
	// trains at every step; TopKD makes it, at its largest size, the teacher of every other
	// pass, its own labels weighed TopKDWeight (0: 1).
	Top         *supernet.Arch
	TopSizes    []int
	TopKD       bool
	TopKDWeight float64
	// Average serves (and the final search measures) the mean of the last Average rounds'
	// end weights, the start's included; 0 or 1: the last round's alone.
	Average int

	Evals        int // measured subnets per round's search (carried ones count)
	FinalEvals   int // measured subnets of the final search, which the task serves
	Initial      int // random sample of each search (smallest and largest included)
	PerIteration int // subnets measured per surrogate iteration
	Carry        int // best members of the previous archive measured again on the new weights
	CalibImages  int // BatchNorm calibration images from train, stored in the task
	// SeedArchs are measured first by every search.
	SeedArchs []supernet.Arch
	// Budgets are MAdds budgets pre-resolved on the final weights: the resolver's
	// candidates under each are measured, so that served answers there are measured.
	Budgets []int64

	Seed    uint64
	Half    bool // store float16 weights; the final search measures the rounded weights
	Latency bool // measure onnxruntime batch-1 latency of the final archive
	// ORTThreads are onnxruntime's intra-op threads for Latency.
	ORTThreads int
	Workers    int // image decoding goroutines; 0: one per core
	// StateEvery saves the fine-tuning's resumable state every this many steps.
	StateEvery int
}

// DefaultConfig is natgw adapt's defaults; Supernet, Data and Out are left to the caller.
func DefaultConfig() Config {
	return Config{
		Iterations: 2, Epochs: 3, Batch: 32, Resolution: 128, Subnets: 1,
		LR: 0.001, WeightDecay: 4e-5, LabelSmoothing: 0.1, KDRatio: 1, CropScale: 0.5,
		Elite: 16, Uniform: 0.1,
		Evals: 24, FinalEvals: 48, Initial: 8, PerIteration: 8, Carry: 8, CalibImages: 500,
		Budgets: []int64{25e6, 50e6, 100e6, 150e6, 200e6, 300e6, 400e6},
		Seed:    1, Half: true, Latency: true, ORTThreads: 2, StateEvery: 50,
	}
}

// withDefaults fills the names that derive from paths.
func (c Config) withDefaults() Config {
	if c.Name == "" && c.Out != "" {
		c.Name = filepath.Base(filepath.Clean(c.Out))
	}
	if c.Dataset == "" && c.Data != "" {
		c.Dataset = filepath.Base(filepath.Clean(c.Data))
	}
	if c.Work == "" && c.Out != "" {
		c.Work = filepath.Clean(c.Out) + ".work"
	}
	return c
}

// ConfigError is a configuration refused before any work: by Validate, or by Run when a
// setting does not fit the supernet (a Top outside its space). Each line of it names its
// field first ("Average 3: want 0..Iterations+1 = 2"), so that a command can name its
// flags instead.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate reports every setting out of range as a *ConfigError, one line each.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Supernet == "" {
		bad("Supernet: no checkpoint given")
	}
	if c.Data == "" {
		bad("Data: no data set given")
	}
	if c.Out == "" {
		bad("Out: no task folder given")
	}
	if !task.ValidName(c.Name) {
		bad("Name %q: not a task name (lower-case letters, digits, - and _, at most 63)", c.Name)
	}
	if c.Iterations < 0 {
		bad("Iterations %d: want ≥ 0", c.Iterations)
	}
	positive := []struct {
		name string
		v    int
	}{{"Epochs", c.Epochs}, {"Batch", c.Batch}, {"Elite", c.Elite}, {"PerIteration", c.PerIteration}, {"CalibImages", c.CalibImages}, {"StateEvery", c.StateEvery}}
	for _, f := range positive {
		if f.v < 1 {
			bad("%s %d: want ≥ 1", f.name, f.v)
		}
	}
	notNegative := []struct {
		name string
		v    int
	}{{"Subnets", c.Subnets}, {"Initial", c.Initial}, {"Carry", c.Carry}, {"Workers", c.Workers}}
	for _, f := range notNegative {
		if f.v < 0 {
			bad("%s %d: want ≥ 0", f.name, f.v)
		}
	}
	if c.Evals < 4 {
		bad("Evals %d: want ≥ 4 (a surrogate needs four measurements)", c.Evals)
	}
	if c.FinalEvals < 4 {
		bad("FinalEvals %d: want ≥ 4 (a surrogate needs four measurements)", c.FinalEvals)
	}
	if c.Resolution < 8 || c.Resolution > preprocess.MaxResolution {
		bad("Resolution %d: want 8..%d", c.Resolution, preprocess.MaxResolution)
	}
	for _, f := range []struct {
		name  string
		sizes []int
	}{{"TrainResolutions", c.TrainResolutions}, {"TopSizes", c.TopSizes}} {
		for _, r := range f.sizes {
			if r < 8 || r > preprocess.MaxResolution {
				bad("%s %v: size %d, want 8..%d", f.name, f.sizes, r, preprocess.MaxResolution)
			}
		}
	}
	if c.EliteResolutions && len(c.TrainResolutions) > 0 {
		bad("TrainResolutions %v: not beside EliteResolutions", c.TrainResolutions)
	}
	if c.Average < 0 || c.Average > c.Iterations+1 {
		bad("Average %d: want 0..Iterations+1 = %d, the rounds' count (the start's weights included)", c.Average, c.Iterations+1)
	}
	if !(c.LR > 0) {
		bad("LR %g: want > 0", c.LR)
	}
	if c.WeightDecay < 0 {
		bad("WeightDecay %g: want ≥ 0", c.WeightDecay)
	}
	if c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 {
		bad("LabelSmoothing %g: want 0 ≤ it < 1", c.LabelSmoothing)
	}
	if c.KDRatio < 0 {
		bad("KDRatio %g: want ≥ 0", c.KDRatio)
	}
	if !(c.CropScale > 0 && c.CropScale <= 1) {
		bad("CropScale %g: want 0 < it ≤ 1", c.CropScale)
	}
	if !(c.Uniform >= 0 && c.Uniform <= 1) {
		bad("Uniform %g: want 0 ≤ it ≤ 1", c.Uniform)
	}
	if c.TopKD && len(c.TopSizes) == 0 {
		bad("TopKD needs TopSizes")
	}
	if !(c.TopKDWeight >= 0) {
		bad("TopKDWeight %g: want ≥ 0", c.TopKDWeight)
	} else if c.TopKDWeight != 0 && !c.TopKD {
		bad("TopKDWeight %g needs TopKD", c.TopKDWeight)
	}
	for _, b := range c.Budgets {
		if b < 1 {
			bad("Budgets %v: %d is not a positive MAdds count", c.Budgets, b)
		}
	}
	if c.Latency && c.ORTThreads < 1 {
		bad("ORTThreads %d: want ≥ 1 with Latency", c.ORTThreads)
	}
	if len(errs) == 0 {
		return nil
	}
	return &ConfigError{errors.Join(errs...)}
}
