package nat

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
	"github.com/natgw/natgw/internal/files"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/tflite"
)

// ImportConfig imports an ImageNet-pretrained TensorFlow Lite MobileNetV2 as the largest
// subnet of natgw's elastic MobileNetV2 space (natgw import-tflite): the start of every
// task NAT builds.
type ImportConfig struct {
	Model  string // the .tflite file
	Labels string // one label per logit (TensorFlow's: line 0 "background")
	Calib  string // folder of calibration images (any layout) for the BatchNorm statistics
	Out    string // native checkpoint to write

	CalibImages    int    // drawn from Calib; default 512
	Seed           uint64 // of that draw
	Resolution     int    // calibration resolution; default 224
	Batch          int    // calibration batch; default 16
	DropBackground bool   // drop logit 0, keeping the 1000 ILSVRC classes
	Half           bool   // store float16 weights
	ClassesFrom    string // image-folder data set whose classes (matched by name) the head keeps
	ID             string // supernet id; default the model file's name
	// ReplicatedChroma decodes JPEG chroma by replication (Go's image/jpeg) instead of
	// libjpeg's upsampling, in the import and in every task made from the checkpoint (it
	// is recorded in its preprocessing): how the shipped tasks were made.
	ReplicatedChroma bool
	// Progress, if set, gets the import's lines for people.
	Progress func(line string)
}

// maxTFLiteBytes bounds the model file read whole; flatbuffer offsets are 32-bit anyway.
const maxTFLiteBytes = 1 << 30

// Import runs an ImportConfig and writes the supernet.
func Import(ctx context.Context, c ImportConfig) (*importer.Report, error) {
	if c.CalibImages == 0 {
		c.CalibImages = 512
	}
	if c.Resolution == 0 {
		c.Resolution = 224
	}
	if c.Batch == 0 {
		c.Batch = 16
	}
	if c.CalibImages < 1 || c.Batch < 1 || c.Resolution < 8 || c.Resolution > 1024 {
		return nil, &ConfigError{fmt.Errorf("CalibImages %d and Batch %d ≥ 1, Resolution %d in [8, 1024]", c.CalibImages, c.Batch, c.Resolution)}
	}
	say := func(format string, a ...any) {
		if c.Progress != nil {
			c.Progress(fmt.Sprintf(format, a...))
		}
	}
	data, err := files.ReadLimited(c.Model, maxTFLiteBytes)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := tflite.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", c.Model, err)
	}
	labels, err := files.ReadLabels(c.Labels)
	if err != nil {
		return nil, err
	}
	if c.DropBackground {
		if len(labels) == 0 || labels[0] != "background" {
			return nil, fmt.Errorf("labels %s: dropping the background wants line 1 to be \"background\"", c.Labels)
		}
		labels = labels[1:]
	}
	set, err := importer.ImageDir(c.Calib)
	if err != nil {
		return nil, err
	}
	set = set.Subset(c.CalibImages, c.Seed)
	pp := importer.Preprocess(c.Resolution)
	if c.ReplicatedChroma {
		pp.JPEGChroma = preprocess.ChromaReplicated
	}
	loader, err := dataset.NewLoader(dataset.Config{Set: set, Spec: pp, Batch: c.Batch})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	if c.ID == "" {
		base := filepath.Base(c.Model)
		c.ID = strings.TrimSuffix(base, filepath.Ext(base))
	}
	labelsJSON, _ := json.Marshal(labels) // []string cannot fail
	ppJSON, _ := json.Marshal(pp)
	say("importing %s with %d calibration images at %d px", c.Model, len(set.Items), c.Resolution)
	sn, rep, err := importer.Import(ctx, m, importer.Options{
		DropBackground: c.DropBackground,
		Calib:          importer.LoaderBatches(loader, c.Resolution),
		Meta: map[string]string{
			supernet.MetaID:      c.ID,
			supernet.MetaVersion: "sha256:" + hex.EncodeToString(sum[:]),
			"labels":             string(labelsJSON),
			preprocess.MetaKey:   string(ppJSON),
			"source_file":        filepath.Base(c.Model),
		},
	})
	if err != nil {
		return nil, err
	}
	if len(labels) != rep.Classes {
		return nil, fmt.Errorf("labels %s: %d labels for %d classes", c.Labels, len(labels), rep.Classes)
	}
	if c.ClassesFrom != "" {
		ds, err := dataset.Open(c.ClassesFrom, "train")
		if err != nil {
			return nil, err
		}
		rows, unmatched := importer.MatchClasses(ds.Labels, labels)
		if len(unmatched) > 0 {
			return nil, fmt.Errorf("classes of %s: %d have no label (first: %q)", c.ClassesFrom, len(unmatched), unmatched[0])
		}
		if sn, err = sn.SelectClasses(rows); err != nil {
			return nil, err
		}
		kept := make([]string, len(rows))
		for i, r := range rows {
			kept[i] = labels[r]
		}
		labelsJSON, _ = json.Marshal(kept)
		sn.Meta["labels"] = string(labelsJSON)
		say("head narrowed to the %d classes of %s", len(rows), c.ClassesFrom)
	}
	if sk := loader.Skipped(); sk > 0 {
		say("warning: %d calibration images could not be read", sk)
	}
	if err := sn.Save(c.Out, supernet.SaveOptions{Half: c.Half}); err != nil {
		return nil, err
	}
	say("wrote %s: spec %s, %d classes; its arch %s at k=%d is the TensorFlow network",
		c.Out, sn.Spec.Name, sn.Spec.Classes, importer.SourceArch(sn.Spec, rep.Kernel, 224), rep.Kernel)
	return rep, nil
}
