package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/internal/files"
	"github.com/natgw/natgw/internal/scores"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	ntask "github.com/natgw/natgw/task"
)

// maxModelBytes bounds an ONNX model the commands read whole.
const maxModelBytes = 2 << 30

func cmdExport(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "export")
	ckpt := fs.String("supernet", "", "supernet checkpoint (OFA .pth or natgw native)")
	arch := fs.String("arch", "", `arch as OFA JSON {"ks":[...],"e":[...],"d":[...],"r":R} or @file.json`)
	out := fs.String("out", "", "ONNX file to write")
	task := fs.String("task", exporter.DefaultTask, "task name recorded in the model's metadata")
	labelsPath := fs.String("labels", "", "file with one class label per line, in logit order (default class_0, class_1, ...)")
	ppArg := fs.String("preprocess", "", "eval preprocessing as preprocess.Spec JSON or @file.json; fields given override the default (whole image resized to R×R, ImageNet mean/std)")
	calibData := fs.String("calib-data", "", "image-folder data set: rebuild the subnet's BatchNorm statistics on images of its train/ split, preprocessed as exported, before export (default: keep the checkpoint's)")
	calibN := fs.Int("calib", 500, "with --calib-data: calibration images")
	calibSeed := fs.Uint64("calib-seed", 1, "with --calib-data: seed of the calibration images' choice")
	if err := parse(fs, args, "supernet", "arch", "out"); err != nil {
		return helpOK(err)
	}
	if *calibN < 1 {
		return usageError{"export: --calib ≥ 1"}
	}
	var labels []string
	if *labelsPath != "" {
		var err error
		if labels, err = files.ReadLabels(*labelsPath); err != nil {
			return err
		}
	}
	sn, sub, err := loadSubnet(*ckpt, *arch)
	if err != nil {
		return err
	}
	if raw, ok := sn.Meta["labels"]; labels == nil && ok {
		// The checkpoint's own labels (imported and trained supernets record them).
		var meta []string
		if json.Unmarshal([]byte(raw), &meta) == nil && len(meta) == sub.Classifier.Out {
			labels = meta
		}
	}
	if labels != nil && len(labels) != sub.Classifier.Out {
		return fmt.Errorf("labels %s: %d labels, but the supernet has %d classes", *labelsPath, len(labels), sub.Classifier.Out)
	}
	pp, err := ntask.SupernetPreprocess(sn, sub.Resolution)
	if err != nil {
		return err
	}
	if *ppArg != "" {
		if pp, err = readPreprocess(*ppArg, pp); err != nil {
			return err
		}
	}
	if *calibData != "" {
		// Statistics of the subnet as served, not the supernet's training averages: what
		// the search measured, and the only sound ones for averaged weights.
		set, err := dataset.Open(*calibData, "train")
		if err != nil {
			return err
		}
		loader, err := dataset.NewLoader(dataset.Config{Set: set.Subset(*calibN, *calibSeed), Spec: pp, Batch: ntask.CalibBatch, CacheDecoded: true})
		if err != nil {
			return err
		}
		err = sub.Recalibrate(ctx, func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
			return loader.Epoch(ctx, 0, func(b dataset.Batch) error { return fn(b.X, b.N, pp.Resolution, pp.Resolution) })
		})
		if err != nil {
			return fmt.Errorf("export: --calib-data: %w", err)
		}
		fmt.Fprintf(env.stderr, "export: BatchNorm statistics rebuilt on %d images of %s\n", min(*calibN, len(set.Items)), filepath.Join(*calibData, "train"))
	}
	id, version, err := supernetProvenance(sn, *ckpt)
	if err != nil {
		return err
	}
	model, err := exporter.Export(sub, exporter.Options{
		Task: *task, Labels: labels, Preprocess: &pp,
		SupernetID: id, SupernetVersion: version, ProducerVersion: producerVersion(),
	})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*out, model); err != nil {
		return err
	}
	c := sub.Count()
	fmt.Fprintf(env.stderr, "wrote %s: %d bytes, arch %s, r %d, %d MAdds, %d params, %d classes\n",
		*out, len(model), sub.Arch.Hash()[:12], sub.Resolution, c.MAdds, c.Params, sub.Classifier.Out)
	return nil
}

// readPreprocess decodes preprocess.Spec JSON (inline or @file) over the defaults.
func readPreprocess(arg string, def preprocess.Spec) (preprocess.Spec, error) {
	data := []byte(arg)
	if p, ok := strings.CutPrefix(arg, "@"); ok {
		var err error
		if data, err = files.ReadLimited(p, 1<<20); err != nil {
			return def, fmt.Errorf("preprocess: %w", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	spec := def
	if err := dec.Decode(&spec); err != nil {
		return def, fmt.Errorf("preprocess: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return def, errors.New("preprocess: trailing data after the JSON value")
	}
	if err := spec.Validate(); err != nil {
		return def, fmt.Errorf("preprocess: %w", err)
	}
	return spec, nil
}

// supernetProvenance is the checkpoint's recorded id and version; a checkpoint without
// them (OFA .pth) is named by its file name and the SHA-256 of its bytes.
func supernetProvenance(sn *supernet.Supernet, path string) (id, version string, err error) {
	id, version = sn.Meta[supernet.MetaID], sn.Meta[supernet.MetaVersion]
	if id == "" {
		base := filepath.Base(path)
		id = strings.TrimSuffix(base, filepath.Ext(base))
	}
	if version == "" {
		f, err := os.Open(path)
		if err != nil {
			return "", "", err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return "", "", fmt.Errorf("hash %s: %w", path, err)
		}
		version = "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
	}
	return id, version, nil
}

// producerVersion is the main module's version when the binary was built from a tagged
// module, else exporter.DefaultProducerVersion.
func producerVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return exporter.DefaultProducerVersion
}

func cmdInfer(ctx context.Context, env *cli, args []string) error {
	fs := newFlags(env, "infer")
	modelPath := fs.String("model", "", "ONNX model written by natgw export")
	imagePath := fs.String("image", "", "JPEG or PNG image")
	top := fs.Int("top", 5, "number of classes to print")
	lib := fs.String("onnxruntime", "", "path of libonnxruntime.so.1 (default: $"+onnxrt.LibraryEnvVar+" or "+onnxrt.LibraryRelPath+" above the working or executable directory)")
	threads := fs.Int("threads", 0, "onnxruntime intra-op threads (0: onnxruntime decides)")
	if err := parse(fs, args, "model", "image"); err != nil {
		return helpOK(err)
	}
	if *top < 1 {
		return usageError{fmt.Sprintf("infer: --top %d, want ≥ 1", *top)}
	}
	if *threads < 0 {
		return usageError{fmt.Sprintf("infer: --threads %d, want ≥ 0", *threads)}
	}
	model, err := files.ReadLimited(*modelPath, maxModelBytes)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	md, err := exporter.ReadMetadata(model)
	if err != nil {
		return fmt.Errorf("model %s: %w", *modelPath, err)
	}
	f, err := os.Open(*imagePath)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	img, err := md.Preprocess.Decode(f, preprocess.Limits{})
	f.Close()
	if err != nil {
		return fmt.Errorf("image %s: %w", *imagePath, err)
	}
	x := make([]float32, md.Preprocess.TensorLen())
	if err := md.Preprocess.Tensor(img, x); err != nil {
		return fmt.Errorf("image %s: %w", *imagePath, err)
	}
	rt, err := onnxrt.NewEnv(onnxrt.Config{LibraryPath: *lib, IntraOpThreads: *threads})
	if err != nil {
		return err
	}
	defer rt.Close()
	sess, err := rt.NewSession(model)
	if err != nil {
		return fmt.Errorf("model %s: %w", *modelPath, err)
	}
	defer sess.Close()
	r := int64(md.Preprocess.Resolution)
	logits, _, err := sess.Run(ctx, x, []int64{1, 3, r, r})
	if err != nil {
		return fmt.Errorf("model %s: %w", *modelPath, err)
	}
	if len(logits) != md.Classes() {
		return fmt.Errorf("model %s: %d logits for %d labels", *modelPath, len(logits), md.Classes())
	}
	for _, p := range scores.TopK(scores.Softmax(logits), md.Labels, *top) {
		fmt.Fprintf(env.stdout, "%s\t%.6f\n", p.Label, p.Probability)
	}
	return nil
}
