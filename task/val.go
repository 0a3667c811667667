package task

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/natgw/natgw/preprocess"
)

// ValDir holds a task's validation images, val/<class index>/<file>, class folders named
// by their zero-based index in labels.txt (four digits, "0007"). With them a server can
// measure subnets the archive lacks exactly as the archive's were measured.
const ValDir = "val"

// maxValImages bounds a task's validation folder.
const maxValImages = 100000

// LabeledImage is a decoded image and its class index.
type LabeledImage struct {
	Image *preprocess.RGB
	Label int
}

// ValClassDir is the folder name of class index i under ValDir.
func ValClassDir(i int) string { return fmt.Sprintf("%04d", i) }

// ValImages returns the task's validation images, decoded on first use, class by class
// and in file-name order within a class; ErrNoVal when the folder has none.
func (t *Task) ValImages() ([]LabeledImage, error) {
	t.valOnce.Do(func() { t.val, t.valErr = ReadVal(t.path(ValDir), len(t.Labels), t.Manifest.Preprocess) })
	return t.val, t.valErr
}

// ErrNoVal means a task folder has no validation images.
var ErrNoVal = errors.New("the task has no validation images (val/)")

// ReadVal decodes a validation folder of a task with classes classes, as pp decodes.
func ReadVal(dir string, classes int, pp preprocess.Spec) ([]LabeledImage, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoVal
	}
	if err != nil {
		return nil, err
	}
	var out []LabeledImage
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		label, err := strconv.Atoi(e.Name())
		if err != nil || label < 0 || label >= classes || e.Name() != ValClassDir(label) {
			return nil, fmt.Errorf("%s: folder %q is not a class index 0000..%s", dir, e.Name(), ValClassDir(classes-1))
		}
		files, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(files))
		for _, f := range files {
			switch strings.ToLower(filepath.Ext(f.Name())) {
			case ".jpg", ".jpeg", ".png":
				if f.Type().IsRegular() {
					names = append(names, f.Name())
				}
			}
		}
		slices.Sort(names)
		if len(out)+len(names) > maxValImages {
			return nil, fmt.Errorf("%s: more than %d images", dir, maxValImages)
		}
		for _, n := range names {
			path := filepath.Join(dir, e.Name(), n)
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			img, err := pp.Decode(f, preprocess.Limits{})
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			out = append(out, LabeledImage{Image: img, Label: label})
		}
	}
	if len(out) == 0 {
		return nil, ErrNoVal
	}
	return out, nil
}

// ValFile is one validation image to copy into a task folder.
type ValFile struct {
	Path  string
	Label int
}

// WriteVal copies files into dir's validation folder (replacing it), each into its
// class's folder under its own base name.
func WriteVal(dir string, files []ValFile) error {
	final := filepath.Join(dir, ValDir)
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, f := range files {
		cd := filepath.Join(tmp, ValClassDir(f.Label))
		if err := os.MkdirAll(cd, 0o755); err != nil {
			return err
		}
		data, err := os.ReadFile(f.Path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cd, filepath.Base(f.Path)), data, 0o644); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}
