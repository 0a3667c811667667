package dataset

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
)

// manifest reads MANIFEST.tsv: path → label column.
func manifest(t *testing.T, root string) map[string]string {
	f, err := os.Open(filepath.Join(root, "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) < 2 || fs[0] == "path" {
			continue
		}
		m[fs[0]] = fs[1]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpenShared(t *testing.T) {
	tests := []struct {
		set        string
		splits     map[string]int // from the README
		classes    int
		firstLabel string // human-readable label of class 0
	}{
		{"flowers102", map[string]int{"train": 1020, "val": 1020, "test": 6149}, 102, "pink primrose"},
		{"tinyimagenet", map[string]int{"train": 16000, "val": 2000}, 200, "goldfish, Carassius auratus"},
		{"cifar10", map[string]int{"train": 5000, "test": 2000}, 10, "airplane"},
	}
	for _, tc := range tests {
		t.Run(tc.set, func(t *testing.T) {
			root := testutil.Shared(t, "data/"+tc.set)
			man := manifest(t, root)
			total := 0
			for split, want := range tc.splits {
				s, err := Open(root, split)
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Items) != want {
					t.Errorf("%s: %d items, README says %d", split, len(s.Items), want)
				}
				if len(s.Classes) != tc.classes || len(s.Labels) != tc.classes {
					t.Errorf("%s: %d classes / %d labels, want %d", split, len(s.Classes), len(s.Labels), tc.classes)
				}
				if !slices.IsSorted(s.Classes) {
					t.Errorf("classes not sorted")
				}
				if s.Labels[0] != tc.firstLabel {
					t.Errorf("label 0 = %q, want %q", s.Labels[0], tc.firstLabel)
				}
				for i, l := range s.Labels {
					if strings.TrimSpace(l) == "" {
						t.Errorf("class %s has an empty label", s.Classes[i])
					}
				}
				// Every item is in the manifest, with the manifest's label.
				for _, it := range s.Items {
					rel, err := filepath.Rel(root, it.Path)
					if err != nil {
						t.Fatal(err)
					}
					lab, ok := man[filepath.ToSlash(rel)]
					if !ok {
						t.Fatalf("%s not in MANIFEST.tsv", rel)
					}
					if lab != s.Classes[it.Label] {
						t.Fatalf("%s: class %s, manifest says %s", rel, s.Classes[it.Label], lab)
					}
				}
				total += len(s.Items)
			}
			if total != len(man) {
				t.Errorf("splits hold %d items, MANIFEST.tsv has %d rows", total, len(man))
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	root := t.TempDir()
	makeSet(t, root, "train", []string{"cat", "dog"}, 2)
	makeSet(t, root, "val", []string{"cat"}, 1)
	_, err := Open(root, "test")
	if err == nil || !strings.Contains(err.Error(), `"test"`) || !strings.Contains(err.Error(), "train, val") {
		t.Fatalf("err = %v, want one naming the missing split and train, val", err)
	}
	if _, err := Open(filepath.Join(root, "nope"), "train"); err == nil {
		t.Fatal("missing root accepted")
	}
	// A split lacking a class still uses the shared class list.
	v, err := Open(root, "val")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v.Classes, []string{"cat", "dog"}) || len(v.Items) != 1 || v.Items[0].Label != 0 {
		t.Fatalf("val: %v %v", v.Classes, v.Items)
	}
	writeFile(t, filepath.Join(root, "empty", "cat", "notes.txt"), []byte("x"))
	if _, err := Open(root, "empty"); err == nil {
		t.Fatal("split without images accepted")
	}
}

func TestClassFiles(t *testing.T) {
	tests := []struct {
		name, file, body string
		want             []string
		wantErr          bool
	}{
		{"headerless index name", "classes.txt", "0\tcat\n1\tdog\n", []string{"cat", "dog"}, false},
		{"header with names", "classes.tsv", "label\tindex0\tname\ncat\t0\tFelis\ndog\t1\tCanis\n", []string{"Felis", "Canis"}, false},
		{"wnid style", "classes.tsv", "index\twnid\twords\n0\tcat\tcat, puss\n1\tdog\tdog, hound\n", []string{"cat, puss", "dog, hound"}, false},
		{"missing entry keeps folder", "classes.tsv", "label\tname\ndog\tCanis\n", []string{"cat", "Canis"}, false},
		{"index disagrees", "classes.txt", "0\tdog\n1\tcat\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			makeSet(t, root, "train", []string{"cat", "dog"}, 1)
			writeFile(t, filepath.Join(root, tc.file), []byte(tc.body))
			s, err := Open(root, "train")
			if tc.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Labels, tc.want) {
				t.Fatalf("labels %q, want %q", s.Labels, tc.want)
			}
		})
	}
}

func TestSubset(t *testing.T) {
	root := t.TempDir()
	makeSet(t, root, "train", []string{"a", "b", "c"}, 10)
	s, err := Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := s.Subset(7, 42), s.Subset(7, 42), s.Subset(7, 43)
	if len(a.Items) != 7 || !slices.Equal(a.Items, b.Items) {
		t.Fatalf("same seed differs or wrong size: %v vs %v", a.Items, b.Items)
	}
	if slices.Equal(a.Items, c.Items) {
		t.Fatal("different seeds gave the same subset")
	}
	seen := map[string]bool{}
	for _, it := range a.Items {
		if seen[it.Path] || !slices.Contains(s.Items, it) {
			t.Fatalf("item %v duplicated or foreign", it)
		}
		seen[it.Path] = true
	}
	if all := s.Subset(1000, 1); len(all.Items) != len(s.Items) {
		t.Fatalf("oversized subset has %d items", len(all.Items))
	}
	if z := s.Subset(0, 1); len(z.Items) != 0 || len(s.Items) != 30 {
		t.Fatal("zero subset or original modified")
	}
}
