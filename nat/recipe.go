package nat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/natgw/natgw/internal/files"
)

// Recipe is how natgw task create builds a task from a data set, stage by stage: import
// the ImageNet-pretrained network, warm it up on the task, adapt it by NAT, choose the eval
// crop per input size on val, evaluate the front on test. Presets name recipes; a recipe is
// also plain JSON (natgw task create --print-recipe, --recipe FILE).
type Recipe struct {
	// ValFraction of each class's train images become val when the data set has none.
	ValFraction float64 `json:"val_fraction"`
	// MinPerClass is the fewest train images a class may have.
	MinPerClass int `json:"min_per_class"`
	// Import rebuilds the pretrained network's BatchNorm statistics on ImportImages train
	// images at ImportResolution.
	ImportImages     int    `json:"import_images"`
	ImportResolution int    `json:"import_resolution"`
	WarmUp           WarmUp `json:"warm_up"`
	Adapt            Adapt  `json:"adapt"`
	// Crops are the eval centre crops tried per input size on val; none: the task keeps
	// the pretrained network's.
	Crops []float64 `json:"crops,omitempty"`
	Seed  uint64    `json:"seed"`
}

// WarmUp is the recipe's first training: the whole supernet (sandwich rule) on the task,
// from the import, its new head at HeadStd.
type WarmUp struct {
	Resolution  int     `json:"resolution"`
	Resolutions []int   `json:"resolutions,omitempty"` // batch sizes drawn per step (nil: Resolution)
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	Subnets     int     `json:"subnets"`
	LR          float64 `json:"lr"`
	WeightDecay float64 `json:"weight_decay"`
	Dropout     float64 `json:"dropout"`
	CropScale   float64 `json:"crop_scale"`
	CalibImages int     `json:"calib_images"` // for its final validation only
	HeadStd     float64 `json:"head_std"`
	Top         Top     `json:"top"`
}

// Top puts the imported network's own arch at Resolution at the top of the sandwich
// (Resolution 0: the largest subnet, as OFA), also trained at Sizes every step; with KD it
// teaches every other pass, its own labels weighed KDWeight.
type Top struct {
	Resolution int     `json:"resolution,omitempty"`
	Sizes      []int   `json:"sizes,omitempty"`
	KD         bool    `json:"kd,omitempty"`
	KDWeight   float64 `json:"kd_weight,omitempty"`
}

// Adapt is the recipe's NAT adaptation (Config's settings, the paths and names aside).
type Adapt struct {
	Resolution       int     `json:"resolution"`
	Iterations       int     `json:"iterations"`
	Epochs           int     `json:"epochs"`
	LR               float64 `json:"lr"`
	Evals            int     `json:"evals"`
	FinalEvals       int     `json:"final_evals"`
	CalibImages      int     `json:"calib_images"`
	SeedSizes        []int   `json:"seed_sizes,omitempty"` // the imported arch at these sizes, measured first by every search
	TrainResolutions []int   `json:"train_resolutions,omitempty"`
	Top              Top     `json:"top"`
	Average          int     `json:"average,omitempty"`
	Latency          bool    `json:"latency"`
	Budgets          []int64 `json:"budgets,omitempty"`
}

// Presets are the named recipes.
var Presets = map[string]Recipe{
	// standard is the recipe that built the shipped flowers task (docs/results.md): about an
	// hour for a thousand 64-px images on two cores.
	"standard": {
		ValFraction: 0.1, MinPerClass: 5,
		ImportImages: 1020, ImportResolution: 128,
		WarmUp: WarmUp{Resolution: 128, Epochs: 10, Batch: 32, Subnets: 1, LR: 0.001, WeightDecay: 4e-5, Dropout: 0.2,
			CropScale: 0.5, CalibImages: 500, HeadStd: 0.01,
			Top: Top{Resolution: 128, Sizes: []int{96, 128, 160}, KD: true, KDWeight: 2}},
		Adapt: Adapt{Resolution: 128, Iterations: 2, Epochs: 5, LR: 0.001, Evals: 20, FinalEvals: 40, CalibImages: 500,
			SeedSizes: []int{96, 128, 160, 192, 224}, TrainResolutions: []int{96, 128, 128, 160},
			Top: Top{Resolution: 128, Sizes: []int{96, 128, 160}, KD: true, KDWeight: 2}, Average: 3, Latency: true,
			Budgets: DefaultConfig().Budgets},
		Crops: DefaultCrops,
		Seed:  1,
	},
	// quick finishes a ten-class, 1,200-image, 64-px task in a quarter of an hour on two
	// cores (docs/results.md): shorter training at 96 px, fewer measurements, two crops.
	"quick": {
		ValFraction: 0.1, MinPerClass: 5,
		ImportImages: 512, ImportResolution: 96,
		WarmUp: WarmUp{Resolution: 96, Epochs: 3, Batch: 32, Subnets: 1, LR: 0.001, WeightDecay: 4e-5, Dropout: 0.2,
			CropScale: 0.5, CalibImages: 200, HeadStd: 0.01},
		Adapt: Adapt{Resolution: 96, Iterations: 1, Epochs: 2, LR: 0.001, Evals: 10, FinalEvals: 16, CalibImages: 200,
			SeedSizes: []int{96, 128}, TrainResolutions: []int{96, 128},
			Latency: true, Budgets: []int64{25e6, 50e6, 100e6}},
		Crops: []float64{1, 0.875},
		Seed:  1,
	},
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var out []string
	for n := range Presets {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// ReadRecipe reads a recipe file: JSON, every field given (unknown ones refused).
func ReadRecipe(path string) (Recipe, error) {
	data, err := files.ReadLimited(path, 1<<20)
	if err != nil {
		return Recipe{}, err
	}
	var r Recipe
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Recipe{}, fmt.Errorf("recipe %s: %w", path, err)
	}
	return r, r.Validate()
}

// Validate reports a recipe's settings out of range as a *ConfigError.
func (r Recipe) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !(r.ValFraction > 0 && r.ValFraction < 1) {
		bad("ValFraction %g: want 0 < it < 1", r.ValFraction)
	}
	if r.MinPerClass < 2 {
		bad("MinPerClass %d: want ≥ 2", r.MinPerClass)
	}
	if r.ImportImages < 1 || r.ImportResolution < 8 {
		bad("ImportImages %d ≥ 1 and ImportResolution %d ≥ 8", r.ImportImages, r.ImportResolution)
	}
	w := r.WarmUp
	if w.Resolution < 8 || w.Epochs < 1 || w.Batch < 1 || w.Subnets < 0 || !(w.LR > 0) || w.CalibImages < 0 || !(w.CropScale > 0 && w.CropScale <= 1) {
		bad("WarmUp: Resolution %d ≥ 8, Epochs %d ≥ 1, Batch %d ≥ 1, Subnets %d ≥ 0, LR %g > 0, CalibImages %d ≥ 0, CropScale %g in (0, 1]",
			w.Resolution, w.Epochs, w.Batch, w.Subnets, w.LR, w.CalibImages, w.CropScale)
	}
	if w.Top.KD && len(w.Top.Sizes) == 0 || r.Adapt.Top.KD && len(r.Adapt.Top.Sizes) == 0 {
		bad("Top.KD needs Top.Sizes")
	}
	// The adaptation's own ranges are Config.Validate's; checked with the paths filled in
	// by Create.
	if len(r.Crops) > 0 {
		if _, err := checkCrops(r.Crops); err != nil {
			bad("Crops %v: %v", r.Crops, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &ConfigError{errors.Join(errs...)}
}

// WriteRecipe writes a recipe as indented JSON.
func WriteRecipe(path string, r Recipe) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
