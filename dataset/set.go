package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Set is one split of an image-folder data set.
type Set struct {
	Root, Split string
	Classes     []string // class folder names, sorted; Label indexes this
	Labels      []string // human-readable names, same order as Classes
	Items       []Item
}

// Item is one image file and its class index.
type Item struct {
	Path  string
	Label int
}

// IsImage reports whether a file name is a JPEG or PNG image by its extension.
func IsImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// subdirs lists the non-hidden directories in dir, sorted.
func subdirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Open reads split of the data set at root.
func Open(root, split string) (*Set, error) {
	splits, err := subdirs(root)
	if err != nil {
		return nil, fmt.Errorf("dataset: open %s: %w", root, err)
	}
	if !slices.Contains(splits, split) {
		return nil, fmt.Errorf("dataset: %s has no split %q (present: %s)", root, split, strings.Join(splits, ", "))
	}
	// Class list over every split, so label indices agree between splits.
	var classes []string
	for _, sp := range splits {
		cs, err := subdirs(filepath.Join(root, sp))
		if err != nil {
			return nil, fmt.Errorf("dataset: list classes of %s: %w", sp, err)
		}
		classes = append(classes, cs...)
	}
	slices.Sort(classes)
	classes = slices.Compact(classes)
	if len(classes) == 0 {
		return nil, fmt.Errorf("dataset: %s: no class folders", filepath.Join(root, split))
	}
	labels, err := readLabels(root, classes)
	if err != nil {
		return nil, err
	}
	s := &Set{Root: root, Split: split, Classes: classes, Labels: labels}
	for ci, c := range classes {
		dir := filepath.Join(root, split, c)
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // class absent from this split
		}
		if err != nil {
			return nil, fmt.Errorf("dataset: list %s: %w", dir, err)
		}
		for _, e := range ents { // ReadDir sorts by name
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") && IsImage(e.Name()) {
				s.Items = append(s.Items, Item{Path: filepath.Join(dir, e.Name()), Label: ci})
			}
		}
	}
	if len(s.Items) == 0 {
		return nil, fmt.Errorf("dataset: %s: no JPEG or PNG files", filepath.Join(root, split))
	}
	return s, nil
}

// readLabels maps class folders to labels using the root's classes file, if
// any; classes without an entry keep their folder name.
func readLabels(root string, classes []string) ([]string, error) {
	labels := slices.Clone(classes)
	var path string
	for _, name := range []string{"classes.tsv", "classes.txt"} { // first found wins
		p := filepath.Join(root, name)
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return labels, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: classes file: %w", err)
	}
	defer f.Close()
	pos := make(map[string]int, len(classes))
	for i, c := range classes {
		pos[c] = i
	}
	idxCol := -1 // column holding a 0-based index, if known
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fields := strings.Split(text, "\t")
		if line == 0 {
			if _, err := strconv.Atoi(fields[0]); err != nil { // a header row
				for i, h := range fields {
					if h == "index" || h == "index0" {
						idxCol = i
					}
				}
				continue
			}
			idxCol = 0 // headerless "index<TAB>name"
		}
		key := -1
		for i, fv := range fields {
			if _, ok := pos[fv]; ok && i != idxCol {
				key = i
				break
			}
		}
		if key < 0 {
			continue // a class this copy of the data does not have
		}
		ci := pos[fields[key]]
		if idxCol >= 0 && idxCol < len(fields) {
			if n, err := strconv.Atoi(fields[idxCol]); err == nil && n != ci {
				return nil, fmt.Errorf("dataset: %s line %d: class %q has index %d but sorts to %d", path, line+1, fields[key], n, ci)
			}
		}
		if l := strings.TrimSpace(fields[len(fields)-1]); l != "" {
			labels[ci] = l
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dataset: read %s: %w", path, err)
	}
	return labels, nil
}

// Subset returns n items drawn without replacement by a generator seeded with
// seed, kept in their original order (e.g. for BN calibration). The same seed
// gives the same subset. n ≥ len(Items) returns all items.
func (s *Set) Subset(n int, seed uint64) *Set {
	out := *s
	if n >= len(s.Items) {
		out.Items = slices.Clone(s.Items)
		return &out
	}
	n = max(n, 0)
	r := rand.New(rand.NewPCG(seed, 0x5ab5e7))
	idx := make([]int, len(s.Items))
	for i := range idx {
		idx[i] = i
	}
	for i := range n { // partial Fisher–Yates
		j := i + r.IntN(len(idx)-i)
		idx[i], idx[j] = idx[j], idx[i]
	}
	pick := idx[:n]
	slices.Sort(pick)
	out.Items = make([]Item, n)
	for i, k := range pick {
		out.Items[i] = s.Items[k]
	}
	return &out
}
