package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/importer"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/tflite"
)

// maxTFLiteBytes bounds the model file read whole; flatbuffer offsets are 32-bit anyway.
const maxTFLiteBytes = 1 << 30

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
	if err := parse(fs, args, "model", "labels", "calib", "out"); err != nil {
		return helpOK(err)
	}
	if *calibN < 1 || *batch < 1 || *res < 8 || *res > 1024 {
		return usageError{"import-tflite: --calib-images and --batch must be ≥ 1, --resolution in [8, 1024]"}
	}
	data, err := readFileLimited(*modelPath, maxTFLiteBytes)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	m, err := tflite.Parse(data)
	if err != nil {
		return fmt.Errorf("model %s: %w", *modelPath, err)
	}
	labels, err := readLabels(*labelsPath)
	if err != nil {
		return err
	}
	if *dropBG {
		if len(labels) == 0 || labels[0] != "background" {
			return fmt.Errorf("labels %s: --drop-background wants line 1 to be \"background\"", *labelsPath)
		}
		labels = labels[1:]
	}
	set, err := importer.ImageDir(*calibDir)
	if err != nil {
		return err
	}
	set = set.Subset(*calibN, *seed)
	loader, err := dataset.NewLoader(dataset.Config{Set: set, Spec: importer.Preprocess(*res), Batch: *batch})
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if *id == "" {
		base := filepath.Base(*modelPath)
		*id = strings.TrimSuffix(base, filepath.Ext(base))
	}
	labelsJSON, _ := json.Marshal(labels) // []string cannot fail
	ppJSON, _ := json.Marshal(importer.Preprocess(*res))
	fmt.Fprintf(env.stderr, "importing %s with %d calibration images at %d px\n", *modelPath, len(set.Items), *res)
	sn, rep, err := importer.Import(ctx, m, importer.Options{
		DropBackground: *dropBG,
		Calib:          importer.LoaderBatches(loader, *res),
		Meta: map[string]string{
			supernet.MetaID:      *id,
			supernet.MetaVersion: "sha256:" + hex.EncodeToString(sum[:]),
			"labels":             string(labelsJSON),
			preprocess.MetaKey:   string(ppJSON),
			"source_file":        filepath.Base(*modelPath),
		},
	})
	if err != nil {
		return err
	}
	if len(labels) != rep.Classes {
		return fmt.Errorf("labels %s: %d labels for %d classes", *labelsPath, len(labels), rep.Classes)
	}
	if *classesFrom != "" {
		ds, err := dataset.Open(*classesFrom, "train")
		if err != nil {
			return err
		}
		rows, unmatched := importer.MatchClasses(ds.Labels, labels)
		if len(unmatched) > 0 {
			return fmt.Errorf("--classes-from %s: %d classes have no label (first: %q)", *classesFrom, len(unmatched), unmatched[0])
		}
		if sn, err = sn.SelectClasses(rows); err != nil {
			return err
		}
		kept := make([]string, len(rows))
		for i, r := range rows {
			kept[i] = labels[r]
		}
		labelsJSON, _ = json.Marshal(kept)
		sn.Meta["labels"] = string(labelsJSON)
		fmt.Fprintf(env.stderr, "head narrowed to the %d classes of %s\n", len(rows), *classesFrom)
	}
	if sk := loader.Skipped(); sk > 0 {
		fmt.Fprintf(env.stderr, "warning: %d calibration images could not be read\n", sk)
	}
	if err := sn.Save(*out, supernet.SaveOptions{Half: *half}); err != nil {
		return err
	}
	repJSON, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, string(repJSON))
	fmt.Fprintf(env.stderr, "wrote %s: spec %s, %d classes; its arch %s at k=%d is the TensorFlow network\n",
		*out, sn.Spec.Name, sn.Spec.Classes, importer.SourceArch(sn.Spec, rep.Kernel, 224), rep.Kernel)
	return nil
}
