package importer

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/supernet"
)

// LoaderBatches adapts an eval loader (batches of res×res images) to supernet.Batches.
func LoaderBatches(l *dataset.Loader, res int) supernet.Batches {
	return func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
		return l.Epoch(ctx, 0, func(b dataset.Batch) error {
			return fn(b.X[:b.N*3*res*res], b.N, res, res)
		})
	}
}

// ImageDir lists every JPEG or PNG file below dir (any folder layout), sorted, as a
// single-class set for calibration.
func ImageDir(dir string) (*dataset.Set, error) {
	s := &dataset.Set{Root: dir, Classes: []string{"images"}, Labels: []string{"images"}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".jpg", ".jpeg", ".png":
			if d.Type().IsRegular() {
				s.Items = append(s.Items, dataset.Item{Path: p})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("calibration images: %w", err)
	}
	if len(s.Items) == 0 {
		return nil, fmt.Errorf("calibration images: no JPEG or PNG files under %s", dir)
	}
	slices.SortFunc(s.Items, func(a, b dataset.Item) int { return strings.Compare(a.Path, b.Path) })
	return s, nil
}
