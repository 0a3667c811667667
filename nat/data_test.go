package nat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/dataset"
)

// imageBytes encodes a small image of one of several kinds, its pixels depending on seed.
func imageBytes(t *testing.T, kind string, seed int) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "gray":
		img := image.NewGray(image.Rect(0, 0, 12, 12))
		for i := range img.Pix {
			img.Pix[i] = uint8(i*7 + seed)
		}
		png.Encode(&buf, img)
	case "alpha":
		img := image.NewNRGBA(image.Rect(0, 0, 12, 12))
		for i := range img.Pix {
			img.Pix[i] = uint8(i*5 + seed)
		}
		png.Encode(&buf, img)
	case "cmyk":
		img := image.NewCMYK(image.Rect(0, 0, 16, 16))
		for i := range img.Pix {
			img.Pix[i] = uint8(i*3 + seed)
		}
		jpeg.Encode(&buf, img, nil)
	default:
		img := image.NewRGBA(image.Rect(0, 0, 12, 12))
		for y := range 12 {
			for x := range 12 {
				img.Set(x, y, color.RGBA{uint8(x*20 + seed), uint8(y * 20), uint8(seed * 3), 255})
			}
		}
		png.Encode(&buf, img)
	}
	return buf.Bytes()
}

// writeSet writes root/split/class/NN.png files: counts[split][class] images each.
func writeSet(t *testing.T, root string, counts map[string]map[string]int) {
	t.Helper()
	seed := 0
	for split, classes := range counts {
		for class, n := range classes {
			dir := filepath.Join(root, split, class)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				seed++
				kind := []string{"rgb", "gray", "alpha", "cmyk"}[seed%4]
				ext := ".png"
				if kind == "cmyk" {
					ext = ".jpg"
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%02d%s", split, i, ext)), imageBytes(t, kind, seed), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func TestCheckDataRefuses(t *testing.T) {
	ok := map[string]int{"cat": 6, "dog": 6}
	for _, tc := range []struct {
		name   string
		counts map[string]map[string]int
		edit   func(root string)
		want   string
	}{
		{"no train split", map[string]map[string]int{"val": ok}, nil, "no train/ folder"},
		{"one class", map[string]map[string]int{"train": {"cat": 9}}, nil, "1 class in train/, need at least 2"},
		{"a class with too few images", map[string]map[string]int{"train": {"cat": 9, "dog": 3}}, nil, "1 classes have fewer than 5 train images: dog (3)"},
		{"class sets differ", map[string]map[string]int{"train": ok, "val": {"cat": 2, "cow": 2}}, nil, "val/ has other classes than train/: missing dog, extra cow"},
		{"test classes differ", map[string]map[string]int{"train": ok, "test": {"cat": 2}}, nil, "test/ has other classes than train/: missing dog"},
		{"undecodable files", map[string]map[string]int{"train": ok}, func(root string) {
			os.WriteFile(filepath.Join(root, "train", "cat", "broken.jpg"), []byte("\xff\xd8\xffnot really"), 0o644)
			os.WriteFile(filepath.Join(root, "train", "dog", "text.png"), []byte("hello"), 0o644)
		}, "2 images cannot be decoded (give --skip-bad to go on without them): train/cat/broken.jpg"},
		{"images outside class folders", map[string]map[string]int{"train": ok}, func(root string) {
			os.WriteFile(filepath.Join(root, "train", "loose.png"), imageBytes(t, "rgb", 1), 0o644)
		}, "train/ holds images outside class folders: loose.png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeSet(t, root, tc.counts)
			if tc.edit != nil {
				tc.edit(root)
			}
			_, err := CheckData(context.Background(), DataConfig{Root: root, Work: t.TempDir()})
			var de *DataError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a data error with %q", err, tc.want)
			}
		})
	}
}

// TestCheckDataSlicesVal: a data set without val gets a stratified, seeded slice of train
// as its val split, in a view; the test split stays where it is; every image kind decodes.
func TestCheckDataSlicesVal(t *testing.T) {
	root := t.TempDir()
	writeSet(t, root, map[string]map[string]int{"train": {"a": 20, "b": 10, "c": 6}, "test": {"a": 2, "b": 2, "c": 2}})
	work := t.TempDir()
	rep, err := CheckData(context.Background(), DataConfig{Root: root, Work: work, ValFraction: 0.2, ValSeed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ValFromTrain == nil || rep.ValFromTrain.Fraction != 0.2 || rep.ValFromTrain.Seed != 7 {
		t.Fatalf("val slice %+v", rep.ValFromTrain)
	}
	// round(0.2·n), at least one: 4 + 2 + 1.
	if rep.Train != 36-7 || rep.Val != 7 || rep.Test != 6 || rep.Data != filepath.Join(work, "data") {
		t.Fatalf("report %+v", rep)
	}
	val, err := dataset.Open(rep.Data, "val")
	if err != nil {
		t.Fatal(err)
	}
	per := map[int]int{}
	for _, it := range val.Items {
		per[it.Label]++
	}
	if per[0] != 4 || per[1] != 2 || per[2] != 1 {
		t.Fatalf("val per class %v, want 4, 2, 1", per)
	}
	if _, err := os.Stat(filepath.Join(rep.Data, "test")); err == nil {
		t.Fatal("the view holds the test split")
	}
	again, err := CheckData(context.Background(), DataConfig{Root: root, Work: t.TempDir(), ValFraction: 0.2, ValSeed: 7})
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := dataset.Open(again.Data, "val")
	for i := range val.Items {
		if filepath.Base(val.Items[i].Path) != filepath.Base(v2.Items[i].Path) {
			t.Fatal("the same seed sliced another val split")
		}
	}
}

// TestCheckDataSkipsAndWarns: with SkipBad the broken files are listed and left out of the
// view; an image in two splits is reported.
func TestCheckDataSkipsAndWarns(t *testing.T) {
	root := t.TempDir()
	writeSet(t, root, map[string]map[string]int{"train": {"a": 6, "b": 6}, "val": {"a": 2, "b": 2}})
	os.WriteFile(filepath.Join(root, "train", "a", "broken.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	dup := imageBytes(t, "rgb", 99)
	os.WriteFile(filepath.Join(root, "train", "b", "same.png"), dup, 0o644)
	os.WriteFile(filepath.Join(root, "val", "b", "same-too.png"), dup, 0o644)
	rep, err := CheckData(context.Background(), DataConfig{Root: root, Work: t.TempDir(), SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Skipped) != 1 || !strings.Contains(rep.Skipped[0], "train/a/broken.png") || rep.Train != 13 {
		t.Fatalf("skipped %v, %d train images", rep.Skipped, rep.Train)
	}
	if len(rep.Duplicates) != 1 || rep.Duplicates[0] != [2]string{"train/b/same.png", "val/b/same-too.png"} {
		t.Fatalf("duplicates %v", rep.Duplicates)
	}
	if len(rep.Warnings) != 2 {
		t.Fatalf("warnings %q", rep.Warnings)
	}
	set, err := dataset.Open(rep.Data, "train")
	if err != nil || len(set.Items) != 13 {
		t.Fatalf("view: %v images (%v)", len(set.Items), err)
	}
}
