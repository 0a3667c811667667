package task

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// maxCalibImages bounds a calibration folder; a few hundred images are plenty.
const maxCalibImages = 4096

// CalibBatch is the batch size of recalibration. It changes the result, not only its
// rounding: each layer sees its input normalised by the batch's own statistics, and the
// variances kept are averages of per-batch ones (OFA's set_running_statistics). On Flowers,
// 100 instead of 64 moved subnets' val top-1 by up to 8 of 1,020 images. Searches that
// measure a task's archive use it too, so served subnets get bit for bit the statistics that
// were measured.
const CalibBatch = 64

// readCalib decodes the .jpg/.jpeg/.png files of dir in name order, as pp decodes, and
// returns a digest of the files' names and bytes. A missing folder is no calibration set
// (digest "none").
func readCalib(dir string, pp preprocess.Spec) ([]*preprocess.RGB, string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "none", nil
	}
	if err != nil {
		return nil, "", err
	}
	var names []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".jpg", ".jpeg", ".png":
			names = append(names, e.Name())
		}
	}
	if len(names) > maxCalibImages {
		return nil, "", fmt.Errorf("%s: %d images, more than %d", dir, len(names), maxCalibImages)
	}
	sort.Strings(names)
	imgs := make([]*preprocess.RGB, len(names))
	digest := sha256.New()
	for i, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, "", err
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(digest, "%s %x\n", n, sum)
		if imgs[i], err = pp.Decode(bytes.NewReader(data), preprocess.Limits{}); err != nil {
			return nil, "", fmt.Errorf("%s: %w", filepath.Join(dir, n), err)
		}
	}
	return imgs, hex.EncodeToString(digest.Sum(nil)), nil
}

// Calibration is a recipe for rebuilding BatchNorm statistics on a task's calibration
// images: Images of them, evenly spaced (CalibSample; 0: all), in batches of Batch (0:
// CalibBatch). The zero value is the task's own recipe, the archive's.
type Calibration struct {
	Images int `json:"images,omitempty"`
	Batch  int `json:"batch,omitempty"`
}

// Normal returns c with the task's defaults written out for nimages calibration images.
func (c Calibration) Normal(nimages int) Calibration {
	if c.Images <= 0 || c.Images > nimages {
		c.Images = nimages
	}
	if c.Batch <= 0 {
		c.Batch = CalibBatch
	}
	return c
}

// IsTask reports whether c is the task's own recipe for nimages calibration images.
func (c Calibration) IsTask(nimages int) bool {
	return c.Normal(nimages) == Calibration{}.Normal(nimages)
}

// Key is the recipe's short text for cache keys ("500x64").
func (c Calibration) Key() string { return fmt.Sprintf("%dx%d", c.Images, c.Batch) }

// CalibBatches feeds images, preprocessed at resolution r with spec p, in CalibBatch batches.
func CalibBatches(imgs []*preprocess.RGB, p preprocess.Spec) supernet.Batches {
	return CalibBatchesOf(imgs, p, CalibBatch)
}

// CalibBatchesOf is CalibBatches in batches of batch images.
func CalibBatchesOf(imgs []*preprocess.RGB, p preprocess.Spec, batch int) supernet.Batches {
	return func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
		per := p.TensorLen()
		for lo := 0; lo < len(imgs); lo += batch {
			hi := min(lo+batch, len(imgs))
			x := make([]float32, (hi-lo)*per)
			for i := lo; i < hi; i++ {
				if err := p.Tensor(imgs[i], x[(i-lo)*per:(i-lo+1)*per]); err != nil {
					return err
				}
			}
			if err := fn(x, hi-lo, p.Resolution, p.Resolution); err != nil {
				return err
			}
		}
		return nil
	}
}

// Recalibrate rebuilds sub's BatchNorm statistics on the task's calibration images at the
// subnet's resolution; without calibration images it leaves the subnet as extracted.
func (t *Task) Recalibrate(ctx context.Context, sub *supernet.Subnet) error {
	return t.RecalibrateWith(ctx, sub, t.Preprocess(sub.Resolution))
}

// RecalibrateWith is Recalibrate with the calibration images preprocessed by p instead of
// the task's own spec (natgw tune-crop measures candidate crops this way).
func (t *Task) RecalibrateWith(ctx context.Context, sub *supernet.Subnet, p preprocess.Spec) error {
	if len(t.Calib) == 0 {
		return nil
	}
	return sub.Recalibrate(ctx, CalibBatches(t.Calib, p))
}
