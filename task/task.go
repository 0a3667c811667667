// Package task loads and saves natgw tasks. A task is a folder:
//
//	<dir>/task.json         name, description, file names, preprocessing template
//	<dir>/supernet.safetensors  the task's adapted supernet (native format)
//	<dir>/labels.txt        one class label per line, in class-index order
//	<dir>/archive.json      evaluated subnets (arch, MAdds, params, latency, accuracy, split)
//	<dir>/calib/            the images BatchNorm statistics are rebuilt on
//	<dir>/bnstats.safetensors  the archive's subnets' rebuilt statistics (optional)
//	<dir>/val/<class>/      the validation images, class folders named by class index
//	                        (optional: without them nothing new can be measured)
//
// The archive is human-readable JSON so that people can read and diff it; the specializer
// appends to it and the gateway answers budgets from it.
package task

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/natgw/natgw/internal/atomicfile"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

// File names inside a task folder.
const (
	ManifestFile = "task.json"
	SupernetFile = "supernet.safetensors"
	LabelsFile   = "labels.txt"
	ArchiveFile  = "archive.json"
	// CalibDir holds the images every subnet's BatchNorm statistics are rebuilt on, both
	// when its accuracy is measured and when it is served, so that the two agree.
	CalibDir = "calib"
)

// Manifest is task.json.
type Manifest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Dataset     string `json:"dataset,omitempty"`
	// Preprocess is the eval preprocessing; its resolution is replaced by each subnet's.
	Preprocess preprocess.Spec `json:"preprocess"`
	// CropByResolution overrides Preprocess.CropFraction at the resolutions it names: the
	// centre crop that classifies best depends on the input size (natgw tune-crop chooses
	// it on val).
	CropByResolution map[int]float64 `json:"crop_by_resolution,omitempty"`
	// ValFrom, when set, says the val split was sliced from another split of the data set,
	// which had none (natgw task create).
	ValFrom *ValSlice `json:"val_from,omitempty"`
}

// ValSlice is a val split sliced from another: Fraction of each class's images of From,
// drawn with Seed.
type ValSlice struct {
	From     string  `json:"from"`
	Fraction float64 `json:"fraction"`
	Seed     uint64  `json:"seed"`
}

// At returns the preprocessing for a subnet at resolution r.
func (m *Manifest) At(r int) preprocess.Spec {
	p := m.Preprocess
	p.Resolution = r
	if c, ok := m.CropByResolution[r]; ok {
		p.CropFraction = c
	}
	return p
}

// validate checks the preprocessing template and every per-resolution crop.
func (m *Manifest) validate() error {
	pp := m.Preprocess
	pp.Resolution = 1
	if err := pp.Validate(); err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	for r := range m.CropByResolution {
		if r < 1 {
			return fmt.Errorf("crop_by_resolution: resolution %d must be positive", r)
		}
		if err := m.At(r).Validate(); err != nil {
			return fmt.Errorf("crop_by_resolution[%d]: %w", r, err)
		}
	}
	return nil
}

// Task is a loaded task folder.
type Task struct {
	Manifest
	Dir      string
	Supernet *supernet.Supernet
	Labels   []string
	Archive  *Archive
	// Calib are the calibration images (decoded, in file-name order); empty means the
	// supernet's stored statistics are used as they are.
	Calib []*preprocess.RGB
	// Stats are the stored BatchNorm statistics of archive subnets (empty when the folder
	// has none); Stats.Calibration identifies the calibration they belong to.
	Stats *BNStats

	valOnce sync.Once
	val     []LabeledImage
	valErr  error
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidName reports whether s can name a task (it appears in URLs and cache keys).
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Preprocess returns the task's preprocessing for a subnet at resolution r.
func (t *Task) Preprocess(r int) preprocess.Spec { return t.Manifest.At(r) }

// SupernetPreprocess is the eval preprocessing at resolution r that a checkpoint records
// (natgw import-tflite and train write it), else the ImageNet default.
func SupernetPreprocess(sn *supernet.Supernet, r int) (preprocess.Spec, error) {
	return preprocess.FromMeta(sn.Meta, r, preprocess.DefaultSpec(r))
}

// Load reads a task folder and checks that its parts agree: labels match the supernet's
// classes, archive entries belong to the supernet's space.
func Load(dir string) (*Task, error) {
	var m Manifest
	if err := readJSON(filepath.Join(dir, ManifestFile), &m); err != nil {
		return nil, err
	}
	if !ValidName(m.Name) {
		return nil, fmt.Errorf("%s: name %q must match %s", ManifestFile, m.Name, nameRE)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	sn, err := supernet.Load(filepath.Join(dir, SupernetFile), supernet.LoadOptions{})
	if err != nil {
		return nil, err
	}
	labels, err := ReadLabels(filepath.Join(dir, LabelsFile))
	if err != nil {
		return nil, err
	}
	if len(labels) != sn.Spec.Classes {
		return nil, fmt.Errorf("%s: %d labels, the supernet has %d classes", filepath.Join(dir, LabelsFile), len(labels), sn.Spec.Classes)
	}
	arch, err := LoadArchive(filepath.Join(dir, ArchiveFile), sn.Spec)
	if err != nil {
		return nil, err
	}
	calib, digest, err := readCalib(filepath.Join(dir, CalibDir), m.Preprocess)
	if err != nil {
		return nil, err
	}
	t := &Task{Manifest: m, Dir: dir, Supernet: sn, Labels: labels, Archive: arch, Calib: calib}
	if t.Stats, err = LoadBNStats(t.path(BNStatsFile), calibrationID(t.Supernet.Version(), &m, digest)); err != nil {
		return nil, err
	}
	return t, nil
}

// path is the path of a file in the task folder.
func (t *Task) path(name string) string { return filepath.Join(t.Dir, name) }

// Version identifies everything a model exported from this task depends on besides its
// arch and natgw's own version: the supernet's weights, the calibration and
// preprocessing (Stats.Calibration covers both) and the labels. Caches key models by it.
func (t *Task) Version() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", t.Name, t.Stats.Calibration, strings.Join(t.Labels, "\n"))
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// LoadAll loads every task folder under root (folders holding a task.json, or links to such
// folders), sorted by name. A broken task is an error: serving a subset silently would hide it.
func LoadAll(root string) ([]*Task, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var tasks []*Task
	seen := map[string]string{}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err != nil { // follows links
			continue
		}
		t, err := Load(dir)
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", e.Name(), err)
		}
		if prev, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("task name %q used by both %s and %s", t.Name, prev, dir)
		}
		seen[t.Name] = dir
		tasks = append(tasks, t)
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Name < tasks[j].Name })
	return tasks, nil
}

// Save writes a task folder (manifest, supernet, labels, archive).
func Save(dir string, t *Task, opt supernet.SaveOptions) error {
	if !ValidName(t.Name) {
		return fmt.Errorf("task name %q must match %s", t.Name, nameRE)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, ManifestFile), t.Manifest); err != nil {
		return err
	}
	if err := t.Supernet.Save(filepath.Join(dir, SupernetFile), opt); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, LabelsFile), []byte(strings.Join(t.Labels, "\n")+"\n")); err != nil {
		return err
	}
	a := t.Archive
	if a == nil {
		a = &Archive{}
	}
	return a.Save(filepath.Join(dir, ArchiveFile))
}

// SaveManifest rewrites only a task folder's task.json, after checking it.
func SaveManifest(dir string, m Manifest) error {
	if !ValidName(m.Name) {
		return fmt.Errorf("task name %q must match %s", m.Name, nameRE)
	}
	if err := m.validate(); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, ManifestFile), m)
}

// maxLabels bounds label files; no classification task here has more.
const maxLabels = 100000

// ReadLabels reads one label per line; blank trailing lines are ignored, blank labels are errors.
func ReadLabels(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n"), "\n")
	if len(lines) > maxLabels {
		return nil, fmt.Errorf("%s: %d labels, more than %d", path, len(lines), maxLabels)
	}
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
		if lines[i] == "" {
			return nil, fmt.Errorf("%s:%d: empty label", path, i+1)
		}
	}
	return lines, nil
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(data, '\n'))
}

// writeFile replaces path atomically, so a killed run never leaves half a file.
func writeFile(path string, data []byte) error { return atomicfile.Write(path, data) }
