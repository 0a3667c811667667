package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/natgw/natgw/nat"
)

func cmdImportTFLite(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "import-tflite")
	modelPath := fs.String("model", "", "TensorFlow Lite MobileNetV2 (e.g. mobilenet_v2_1.0_224_quant.tflite)")
	labelsPath := fs.String("labels", "", "labels file, one per logit (TensorFlow's, line 0 \"background\"); stored in the metadata")
	calibDir := fs.String("calib", "", "folder with calibration images (JPEG/PNG, any layout) for the BatchNorm statistics")
	out := fs.String("out", "", "native supernet checkpoint to write (.safetensors)")
	calibN := fs.Int("calib-images", 512, "calibration images drawn from --calib")
	seed := fs.Uint64("seed", 0, "seed of the calibration draw")
	res := fs.Int("resolution", 224, "calibration resolution (the model's training resolution is best)")
	batch := fs.Int("batch", 16, "calibration batch size")
	dropBG := fs.Bool("drop-background", false, "drop logit 0 (background), keeping the 1000 ILSVRC classes")
	half := fs.Bool("half", false, "store float16 weights")
	classesFrom := fs.String("classes-from", "", "image-folder data set whose classes (matched to the labels by name) the head keeps, in the data set's order")
	id := fs.String("id", "", "supernet id for the metadata (default: the model's file name)")
	replicated := fs.Bool("replicated-chroma", false, "decode JPEG chroma by replication (Go's image/jpeg) instead of as libjpeg and browsers do, here and in every task made from this checkpoint: how the shipped tasks were made")
	if err := parse(fs, args, "model", "labels", "calib", "out"); err != nil {
		return helpOK(err)
	}
	rep, err := nat.Import(ctx, nat.ImportConfig{
		Model: *modelPath, Labels: *labelsPath, Calib: *calibDir, Out: *out,
		CalibImages: *calibN, Seed: *seed, Resolution: *res, Batch: *batch, DropBackground: *dropBG, Half: *half,
		ClassesFrom: *classesFrom, ID: *id, ReplicatedChroma: *replicated,
		Progress: func(line string) { fmt.Fprintln(env.stderr, line) },
	})
	var cfgErr *nat.ConfigError
	if errors.As(err, &cfgErr) {
		return usageError{"import-tflite: " + oneLine(withFlagNames(cfgErr, importFlags))}
	}
	if err != nil {
		return err
	}
	repJSON, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, string(repJSON))
	return nil
}

// importFlags names nat.ImportConfig's fields by their natgw import-tflite flags.
var importFlags = map[string]string{"CalibImages": "--calib-images", "Batch": "--batch", "Resolution": "--resolution"}
