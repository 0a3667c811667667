package nat

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/task"
)

// DataConfig checks an image-folder data set before any training and prepares the view a
// recipe trains and measures on.
type DataConfig struct {
	// Root holds train/<class>/<image> and, optionally, val/ and test/ laid out alike.
	// JPEG and PNG images; greyscale, CMYK and alpha are converted to RGB when decoded.
	Root string
	// Work is where a prepared view goes when the data set needs one (no val split, or bad
	// files skipped); Root itself is used otherwise.
	Work string
	// MinPerClass is the fewest train images (val ones included when val is sliced from
	// train) a class may have; default 5.
	MinPerClass int
	// ValFraction of each class's train images become the val split when Root has none;
	// default 0.1 (at least one image per class). ValSeed draws them.
	ValFraction float64
	ValSeed     uint64
	// SkipBad goes on without images that cannot be decoded, instead of refusing the data.
	SkipBad bool
}

// DataReport is what CheckData found and did.
type DataReport struct {
	// Data is the folder to train and measure on: Root, or the prepared view.
	Data    string   `json:"data"`
	Classes []string `json:"classes"`
	// Images per split, after any slicing and skipping.
	Train int `json:"train"`
	Val   int `json:"val"`
	Test  int `json:"test"`
	// ValFromTrain says the val split was sliced from train (stratified, seeded).
	ValFromTrain *task.ValSlice `json:"val_from_train,omitempty"`
	// Skipped are the images that could not be decoded (with SkipBad).
	Skipped []string `json:"skipped,omitempty"`
	// Duplicates are pairs of files with the same bytes in two splits (a leak between
	// them); warned about, not refused.
	Duplicates [][2]string `json:"duplicates,omitempty"`
	// Warnings for people.
	Warnings []string `json:"warnings,omitempty"`
}

// DataError is a data set refused before any training, with every problem found.
type DataError struct {
	Root     string
	Problems []string
}

func (e *DataError) Error() string {
	return fmt.Sprintf("data set %s: %s", e.Root, strings.Join(e.Problems, "; "))
}

// maxListed bounds the file names an error or warning lists.
const maxListed = 10

// CheckData checks a data set and, when needed, writes the view a recipe uses into
// c.Work/data: refused (a *DataError naming each problem) are a missing train split,
// images outside class folders, fewer than two classes, a class with fewer than
// MinPerClass images, class sets that differ between splits, and images that cannot be
// decoded (listed; SkipBad goes on without them). Images with the same bytes in two splits
// are reported. The test split's files are decoded and hashed here, to refuse broken
// files and find leaks, and never otherwise read before the final evaluation.
func CheckData(ctx context.Context, c DataConfig) (DataReport, error) {
	if c.MinPerClass == 0 {
		c.MinPerClass = 5
	}
	if c.ValFraction == 0 {
		c.ValFraction = 0.1
	}
	if c.MinPerClass < 2 || !(c.ValFraction > 0 && c.ValFraction < 1) {
		return DataReport{}, &ConfigError{fmt.Errorf("MinPerClass %d ≥ 2 and ValFraction %g in (0, 1)", c.MinPerClass, c.ValFraction)}
	}
	bad := &DataError{Root: c.Root}
	splits := map[string]*dataset.Set{}
	for _, split := range []string{"train", task.SplitVal, task.SplitTest} {
		dir := filepath.Join(c.Root, split)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if split == "train" {
				bad.Problems = append(bad.Problems, "no train/ folder (want train/<class>/<image>, optionally val/ and test/ alike)")
			}
			continue
		}
		if loose := looseFiles(dir); len(loose) > 0 {
			bad.Problems = append(bad.Problems, fmt.Sprintf("%s/ holds images outside class folders: %s", split, listed(loose)))
		}
		set, err := openSplit(c.Root, split)
		if err != nil {
			bad.Problems = append(bad.Problems, err.Error())
			continue
		}
		splits[split] = set
	}
	train := splits["train"]
	if train == nil {
		return DataReport{}, bad
	}
	rep := DataReport{Data: c.Root, Classes: train.Labels}
	if len(train.Classes) < 2 {
		bad.Problems = append(bad.Problems, fmt.Sprintf("%d class in train/, need at least 2", len(train.Classes)))
	}
	for split, set := range splits {
		if split == "train" {
			continue
		}
		if missing, extra := classDiff(train, set); len(missing)+len(extra) > 0 {
			bad.Problems = append(bad.Problems, fmt.Sprintf("%s/ has other classes than train/: missing %s, extra %s", split, listed(missing), listed(extra)))
		}
	}
	// Decode everything once: broken files refused (or skipped), bytes hashed for leaks.
	decoded, err := decodeAll(ctx, splits)
	if err != nil {
		return DataReport{}, err
	}
	var broken []string
	for _, split := range []string{"train", task.SplitVal, task.SplitTest} {
		for _, d := range decoded[split] {
			if d.err != nil {
				broken = append(broken, fmt.Sprintf("%s (%v)", rel(c.Root, d.item.Path), d.err))
			}
		}
	}
	if len(broken) > 0 {
		if !c.SkipBad {
			bad.Problems = append(bad.Problems, fmt.Sprintf("%d images cannot be decoded (give --skip-bad to go on without them): %s", len(broken), listed(broken)))
		} else {
			rep.Skipped = broken
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("skipped %d images that cannot be decoded", len(broken)))
		}
	}
	rep.Duplicates = duplicates(c.Root, decoded)
	if n := len(rep.Duplicates); n > 0 {
		var pairs []string
		for _, d := range rep.Duplicates {
			pairs = append(pairs, d[0]+" = "+d[1])
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d images are in two splits (same bytes): %s", n, listed(pairs)))
	}
	good := func(split string) []dataset.Item {
		var out []dataset.Item
		for _, d := range decoded[split] {
			if d.err == nil {
				out = append(out, d.item)
			}
		}
		return out
	}
	trainItems, valItems := good("train"), good(task.SplitVal)
	if splits[task.SplitVal] == nil {
		rep.ValFromTrain = &task.ValSlice{From: "train", Fraction: c.ValFraction, Seed: c.ValSeed}
		trainItems, valItems = sliceVal(trainItems, len(train.Classes), c.ValFraction, c.ValSeed)
	}
	perClass := make([]int, len(train.Classes))
	for _, it := range trainItems {
		perClass[it.Label]++
	}
	for _, it := range valItems {
		if splits[task.SplitVal] == nil {
			perClass[it.Label]++
		}
	}
	var few []string
	for i, n := range perClass {
		if n < c.MinPerClass {
			few = append(few, fmt.Sprintf("%s (%d)", train.Classes[i], n))
		}
	}
	if len(few) > 0 {
		bad.Problems = append(bad.Problems, fmt.Sprintf("%d classes have fewer than %d train images: %s", len(few), c.MinPerClass, listed(few)))
	}
	if len(bad.Problems) > 0 {
		return DataReport{}, bad
	}
	rep.Train, rep.Val, rep.Test = len(trainItems), len(valItems), len(good(task.SplitTest))
	if splits[task.SplitVal] == nil || len(rep.Skipped) > 0 {
		// A view of train and val (test stays where it is: only the final evaluation opens it).
		rep.Data = filepath.Join(c.Work, "data")
		if err := writeView(rep.Data, c.Root, train.Classes, trainItems, valItems); err != nil {
			return DataReport{}, err
		}
	}
	return rep, nil
}

// openSplit opens a split of the data set, refusing hidden trouble dataset.Open ignores.
func openSplit(root, split string) (*dataset.Set, error) {
	set, err := dataset.Open(root, split)
	if err != nil {
		return nil, err
	}
	// dataset.Open lists classes over every split: a class folder present in another split
	// only is reported by classDiff, not as an empty class here.
	return set, nil
}

// looseFiles lists image files directly in a split folder (not in a class folder).
func looseFiles(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && dataset.IsImage(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// classDiff lists the classes with images in train but not in set, and the reverse.
func classDiff(train, set *dataset.Set) (missing, extra []string) {
	has := func(s *dataset.Set) map[string]bool {
		m := map[string]bool{}
		for _, it := range s.Items {
			m[s.Classes[it.Label]] = true
		}
		return m
	}
	a, b := has(train), has(set)
	for c := range a {
		if !b[c] {
			missing = append(missing, c)
		}
	}
	for c := range b {
		if !a[c] {
			extra = append(extra, c)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return missing, extra
}

type decodedFile struct {
	item dataset.Item
	sum  [32]byte
	err  error
}

// decodeAll decodes and hashes every file of every split on all cores.
func decodeAll(ctx context.Context, splits map[string]*dataset.Set) (map[string][]decodedFile, error) {
	out := map[string][]decodedFile{}
	for split, set := range splits {
		files := make([]decodedFile, len(set.Items))
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(files); i += workers {
					if ctx.Err() != nil {
						return
					}
					it := set.Items[i]
					files[i].item = it
					data, err := os.ReadFile(it.Path)
					if err != nil {
						files[i].err = err
						continue
					}
					files[i].sum = sha256.Sum256(data)
					_, files[i].err = preprocess.DecodeBytes(data, preprocess.Limits{})
				}
			}()
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[split] = files
	}
	return out, nil
}

// duplicates pairs files with equal bytes in different splits.
func duplicates(root string, decoded map[string][]decodedFile) [][2]string {
	first := map[[32]byte]string{}
	seenIn := map[[32]byte]string{}
	var out [][2]string
	for _, split := range []string{"train", task.SplitVal, task.SplitTest} {
		for _, d := range decoded[split] {
			if d.err != nil {
				continue
			}
			if s, ok := seenIn[d.sum]; ok && s != split {
				out = append(out, [2]string{first[d.sum], rel(root, d.item.Path)})
				continue
			}
			if _, ok := seenIn[d.sum]; !ok {
				seenIn[d.sum], first[d.sum] = split, rel(root, d.item.Path)
			}
		}
	}
	return out
}

// sliceVal moves a seeded, stratified share of each class's train items to val: round(n ×
// fraction) of a class of n, at least one, never all; both lists keep train's order.
func sliceVal(items []dataset.Item, classes int, fraction float64, seed uint64) (train, val []dataset.Item) {
	byClass := make([][]int, classes)
	for i, it := range items {
		byClass[it.Label] = append(byClass[it.Label], i)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5a1ce))
	isVal := make([]bool, len(items))
	for _, idx := range byClass {
		n := len(idx)
		k := max(1, int(float64(n)*fraction+0.5))
		if k >= n {
			k = n - 1
		}
		for _, j := range rng.Perm(n)[:max(k, 0)] {
			isVal[idx[j]] = true
		}
	}
	for i, it := range items {
		if isVal[i] {
			val = append(val, it)
		} else {
			train = append(train, it)
		}
	}
	return train, val
}

// writeView copies train and val items into dir/train and dir/val (class folders kept, the
// classes file too), replacing whatever was there.
func writeView(dir, root string, classes []string, train, val []dataset.Item) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	for _, name := range []string{"classes.tsv", "classes.txt"} {
		if data, err := os.ReadFile(filepath.Join(root, name)); err == nil {
			if err := os.MkdirAll(tmp, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	for split, items := range map[string][]dataset.Item{"train": train, task.SplitVal: val} {
		for _, it := range items {
			d := filepath.Join(tmp, split, classes[it.Label])
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			data, err := os.ReadFile(it.Path)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(d, filepath.Base(it.Path)), data, 0o644); err != nil {
				return err
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

// listed shows at most maxListed names.
func listed(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	names = slices.Clone(names)
	if len(names) > maxListed {
		return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
	}
	return strings.Join(names, ", ")
}
