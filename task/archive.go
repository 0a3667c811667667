package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"

	"github.com/natgw/natgw/supernet"
)

// Splits an accuracy may be measured on. Selection (search, budget resolution) only ever
// uses SplitVal; SplitTest is recorded once, for final reporting.
const (
	SplitVal  = "val"
	SplitTest = "test"
)

// Source says how an entry entered an archive: a closed set, checked on load.
type Source string

// The sources.
const (
	// SourceInitial: the search's initial sample (the smallest and largest subnets, then
	// uniform-random ones).
	SourceInitial Source = "initial"
	// SourceSeed: an arch the caller asked every search to measure first.
	SourceSeed Source = "seed"
	// SourceSearch: picked by the surrogate-assisted search.
	SourceSearch Source = "search"
	// SourceCarried: one of the previous adaptation round's best members, measured again
	// on the new weights.
	SourceCarried Source = "carried"
	// SourceResolve: a budget's candidate, measured because the resolver predicted it to
	// beat the measured answer.
	SourceResolve Source = "resolve"
	// SourceSynthetic: an accuracy made up, for tests, demos and benchmarks; never in a
	// task anyone is served models from for their accuracy.
	SourceSynthetic Source = "synthetic"
)

// Valid reports whether s is one of the sources (or empty: entries written before sources
// were recorded).
func (s Source) Valid() bool {
	switch s {
	case "", SourceInitial, SourceSeed, SourceSearch, SourceCarried, SourceResolve, SourceSynthetic:
		return true
	}
	return false
}

// Entry is one evaluated subnet.
type Entry struct {
	Arch      supernet.Arch `json:"arch"` // canonical
	Hash      string        `json:"hash"`
	MAdds     int64         `json:"madds"`
	Params    int64         `json:"params"`
	LatencyMS float64       `json:"latency_ms,omitempty"` // onnxruntime batch 1 on the reference machine; 0 = unknown
	// Top1 is the top-1 accuracy (a fraction) on Split; it drives every selection.
	Top1  float64 `json:"top1"`
	Split string  `json:"split"`
	// TestTop1 is the final-evaluation accuracy on the held-out test split, measured after
	// selection for reporting only; nil when not measured.
	TestTop1 *float64 `json:"test_top1,omitempty"`
	// Predicted marks accuracies that come from a surrogate, not a measurement.
	Predicted bool `json:"predicted,omitempty"`
	// Source is how it entered the archive; Iteration the search iteration that picked it.
	Source    Source `json:"source,omitempty"`
	Iteration int    `json:"iteration,omitempty"`
	// Calibration, when set, is how its BatchNorm statistics were rebuilt when not as the
	// task's (all its calibration images in CalibBatch batches).
	Calibration *Calibration `json:"calibration,omitempty"`
}

// Archive is a task's record of evaluated subnets. Methods are safe for concurrent use.
type Archive struct {
	mu sync.RWMutex
	// Version identifies the supernet the accuracies were measured with.
	SupernetVersion string  `json:"supernet_version,omitempty"`
	Entries         []Entry `json:"entries"`
}

type archiveJSON struct {
	SupernetVersion string  `json:"supernet_version,omitempty"`
	Entries         []Entry `json:"entries"`
}

// LoadArchive reads an archive and checks every entry against the spec: a valid canonical
// arch whose hash matches. A missing file is an empty archive.
func LoadArchive(path string, spec *supernet.Spec) (*Archive, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Archive{}, nil
	}
	if err != nil {
		return nil, err
	}
	var a archiveJSON
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, e := range a.Entries {
		c, err := spec.Canonical(e.Arch)
		if err != nil {
			return nil, fmt.Errorf("%s: entries[%d]: %w", path, i, err)
		}
		if e.Hash != "" && e.Hash != c.Hash() {
			return nil, fmt.Errorf("%s: entries[%d]: hash %s does not match arch (%s)", path, i, e.Hash, c.Hash())
		}
		if e.Split != SplitVal {
			return nil, fmt.Errorf("%s: entries[%d]: split %q, want %q (selection never uses another split)", path, i, e.Split, SplitVal)
		}
		if !e.Source.Valid() {
			return nil, fmt.Errorf("%s: entries[%d]: unknown source %q", path, i, e.Source)
		}
		a.Entries[i].Arch, a.Entries[i].Hash = c, c.Hash()
	}
	return &Archive{SupernetVersion: a.SupernetVersion, Entries: a.Entries}, nil
}

// Save writes the archive atomically, entries in insertion order.
func (a *Archive) Save(path string) error {
	a.mu.RLock()
	data, err := json.MarshalIndent(archiveJSON{SupernetVersion: a.SupernetVersion, Entries: a.Entries}, "", "  ")
	a.mu.RUnlock()
	if err != nil {
		return err
	}
	return writeFile(path, append(data, '\n'))
}

// Snapshot returns a copy of the entries.
func (a *Archive) Snapshot() []Entry {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]Entry(nil), a.Entries...)
}

// Len is the number of entries.
func (a *Archive) Len() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.Entries)
}

// Lookup finds the entry for a canonical arch hash.
func (a *Archive) Lookup(hash string) (Entry, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, e := range a.Entries {
		if e.Hash == hash {
			return e, true
		}
	}
	return Entry{}, false
}

// Put adds e, replacing a predicted entry for the same arch; a measured entry is never
// replaced by a predicted one. It reports whether the archive changed.
func (a *Archive) Put(e Entry) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, old := range a.Entries {
		if old.Hash == e.Hash {
			if !old.Predicted || e.Predicted {
				return false
			}
			a.Entries[i] = e
			return true
		}
	}
	a.Entries = append(a.Entries, e)
	return true
}

// SetTestTop1 records the final test-split accuracy of a measured entry. It never changes
// Top1, so no selection can depend on it. It reports whether the entry was found.
func (a *Archive) SetTestTop1(hash string, top1 float64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, e := range a.Entries {
		if e.Hash == hash && !e.Predicted {
			a.Entries[i].TestTop1 = &top1
			return true
		}
	}
	return false
}

// Remeasure replaces a measured entry's val accuracy after the task's eval preprocessing
// changed, and drops its test accuracy, which was measured with the old preprocessing and
// no longer describes the served model. It reports whether the entry was found.
func (a *Archive) Remeasure(hash string, top1 float64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, e := range a.Entries {
		if e.Hash == hash && !e.Predicted {
			a.Entries[i].Top1, a.Entries[i].TestTop1 = top1, nil
			return true
		}
	}
	return false
}

// Front returns the measured entries that no other measured entry beats on both accuracy
// (higher) and MAdds (lower), sorted by MAdds.
func Front(entries []Entry) []Entry {
	var m []Entry
	for _, e := range entries {
		if !e.Predicted {
			m = append(m, e)
		}
	}
	sort.Slice(m, func(i, j int) bool {
		if m[i].MAdds != m[j].MAdds {
			return m[i].MAdds < m[j].MAdds
		}
		return m[i].Top1 > m[j].Top1
	})
	var front []Entry
	best := -1.0
	for _, e := range m {
		if e.Top1 > best {
			front = append(front, e)
			best = e.Top1
		}
	}
	return front
}
