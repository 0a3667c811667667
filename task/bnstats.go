package task

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/natgw/natgw/internal/safetensors"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// BNStatsFile holds the BatchNorm statistics of the archive's subnets, by arch hash.
const BNStatsFile = "bnstats.safetensors"

// bnStatsFormat is the file's format version, in its metadata.
const bnStatsFormat = "1"

// BNStats are recalibrated BatchNorm statistics of subnets (supernet.Subnet.BNStats's
// layout), by canonical arch hash. A task stores those of its archive's subnets, computed
// when it is built, so that serving one is slicing and folding only: no forward pass. They
// belong to one calibration (Calibration): the supernet's weights, the calibration images
// and the preprocessing; a file made for another is refused. Methods are safe for
// concurrent use.
type BNStats struct {
	Calibration string

	mu sync.RWMutex
	m  map[string]bnPair
}

type bnPair struct{ mean, variance []float32 }

// NewBNStats returns an empty set for calibration id.
func NewBNStats(calibration string) *BNStats {
	return &BNStats{Calibration: calibration, m: map[string]bnPair{}}
}

// Lookup returns the statistics stored for an arch hash.
func (s *BNStats) Lookup(hash string) (mean, variance []float32, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.m[hash]
	return p.mean, p.variance, ok
}

// Put stores an arch's statistics (the slices are kept: do not change them).
func (s *BNStats) Put(hash string, mean, variance []float32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[hash] = bnPair{mean, variance}
}

// Len is the number of archs stored.
func (s *BNStats) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

// Save writes the set as safetensors: tensors "<hash>.mean" and "<hash>.var" (float32,
// sorted by hash), metadata "calibration" and "format".
func (s *BNStats) Save(path string) error {
	s.mu.RLock()
	hashes := make([]string, 0, len(s.m))
	for h := range s.m {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	f := safetensors.File{Metadata: map[string]string{"calibration": s.Calibration, "format": bnStatsFormat}}
	for _, h := range hashes {
		p := s.m[h]
		f.Tensors = append(f.Tensors,
			safetensors.Tensor{Name: h + ".mean", DType: "F32", Shape: []int{len(p.mean)}, Data: p.mean},
			safetensors.Tensor{Name: h + ".var", DType: "F32", Shape: []int{len(p.variance)}, Data: p.variance})
	}
	s.mu.RUnlock()
	return safetensors.WriteFile(path, f)
}

// ErrStaleBNStats means a task's stored statistics were computed for another calibration.
var ErrStaleBNStats = errors.New("stored BatchNorm statistics belong to another calibration")

// LoadBNStats reads a statistics file made for calibration id; a missing file is an empty
// set, one made for another calibration is ErrStaleBNStats.
func LoadBNStats(path, calibration string) (*BNStats, error) {
	f, err := safetensors.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NewBNStats(calibration), nil
	}
	if err != nil {
		return nil, err
	}
	if v := f.Metadata["format"]; v != bnStatsFormat {
		return nil, fmt.Errorf("%s: format %q, want %q", path, v, bnStatsFormat)
	}
	if got := f.Metadata["calibration"]; got != calibration {
		return nil, fmt.Errorf("%s: %w (made for %q, the task's is %q): run natgw task calibrate", path, ErrStaleBNStats, got, calibration)
	}
	s := NewBNStats(calibration)
	for _, t := range f.Tensors {
		hash, kind, ok := strings.Cut(t.Name, ".")
		if !ok || (kind != "mean" && kind != "var") || len(t.Shape) != 1 || t.Data == nil {
			return nil, fmt.Errorf("%s: unexpected tensor %q (%s %v)", path, t.Name, t.DType, t.Shape)
		}
		p := s.m[hash]
		if kind == "mean" {
			p.mean = t.Data
		} else {
			p.variance = t.Data
		}
		s.m[hash] = p
	}
	for h, p := range s.m {
		if len(p.mean) != len(p.variance) {
			return nil, fmt.Errorf("%s: arch %s has %d means and %d variances", path, h, len(p.mean), len(p.variance))
		}
	}
	return s, nil
}

// calibrationID digests what a subnet's recalibrated statistics depend on: the supernet's
// weights, the calibration batch, the preprocessing at every resolution and the calibration
// images (names and bytes, in order).
func calibrationID(supernetVersion string, m *Manifest, calibDigest string) string {
	h := sha256.New()
	pp, _ := json.Marshal(m.Preprocess) // a struct of plain fields: cannot fail
	fmt.Fprintf(h, "supernet %s\nbatch %d\npreprocess %s\n", supernetVersion, CalibBatch, pp)
	for _, r := range slices.Sorted(maps.Keys(m.CropByResolution)) {
		fmt.Fprintf(h, "crop %d %s\n", r, strconv.FormatFloat(m.CropByResolution[r], 'g', -1, 64))
	}
	fmt.Fprintf(h, "calib %s\n", calibDigest)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Subnet returns an entry's subnet ready to serve: extracted, with the BatchNorm
// statistics its accuracy was measured with — the stored ones when the task has them, else
// rebuilt on the calibration images the entry names (a forward pass over them: seconds).
func (t *Task) Subnet(ctx context.Context, e Entry) (*supernet.Subnet, error) {
	sub, err := t.Supernet.Extract(e.Arch)
	if err != nil {
		return nil, err
	}
	if mean, variance, ok := t.Stats.Lookup(sub.Arch.Hash()); ok {
		if err := sub.SetBNStats(mean, variance); err != nil {
			return nil, fmt.Errorf("stored statistics of %s: %w", sub.Arch.Hash(), err)
		}
		return sub, nil
	}
	if len(t.Calib) > 0 {
		var c Calibration
		if e.Calibration != nil {
			c = *e.Calibration
		}
		c = c.Normal(len(t.Calib))
		if err := sub.Recalibrate(ctx, CalibBatchesOf(CalibSample(t.Calib, c.Images), t.Preprocess(sub.Resolution), c.Batch)); err != nil {
			return nil, err
		}
	}
	return sub, nil
}

// CalibSample returns n of the calibration images, evenly spaced (the i·len/n-th), all of
// them when n is 0 or at least their number. Calibration folders are in class order: an
// evenly spaced sample keeps every part of it where the first n would not.
func CalibSample(calib []*preprocess.RGB, n int) []*preprocess.RGB {
	if n <= 0 || n >= len(calib) {
		return calib
	}
	out := make([]*preprocess.RGB, n)
	for i := range out {
		out[i] = calib[i*len(calib)/n]
	}
	return out
}

// StoreStats recalibrates every measured archive entry that has no stored statistics yet
// (as its accuracy was measured: the calibration images at CalibBatch) and writes the
// task's statistics file. It reports how many it computed; progress, if set, is told of each.
func (t *Task) StoreStats(ctx context.Context, progress func(done, total int, e Entry)) (int, error) {
	var todo []Entry
	for _, e := range t.Archive.Snapshot() {
		if _, _, ok := t.Stats.Lookup(e.Hash); !ok && !e.Predicted {
			todo = append(todo, e)
		}
	}
	for i, e := range todo {
		sub, err := t.Supernet.Extract(e.Arch)
		if err != nil {
			return i, err
		}
		if err := t.Recalibrate(ctx, sub); err != nil {
			return i, err
		}
		mean, variance := sub.BNStats()
		t.Stats.Put(e.Hash, mean, variance)
		if progress != nil {
			progress(i+1, len(todo), e)
		}
	}
	if len(todo) == 0 {
		if _, err := os.Stat(t.path(BNStatsFile)); err == nil {
			return 0, nil
		}
	}
	return len(todo), t.Stats.Save(t.path(BNStatsFile))
}
