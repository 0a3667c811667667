package nat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChooseCrops(t *testing.T) {
	crops := []float64{1, 0.875}
	rows := []CropRow{
		// 96 px: 0.875 better on average though worse on one entry.
		{Hash: "a", R: 96, Crop: 1, Top1: 0.50}, {Hash: "a", R: 96, Crop: 0.875, Top1: 0.60},
		{Hash: "b", R: 96, Crop: 1, Top1: 0.70}, {Hash: "b", R: 96, Crop: 0.875, Top1: 0.66},
		// 160 px: a tie goes to the larger crop.
		{Hash: "c", R: 160, Crop: 1, Top1: 0.80}, {Hash: "c", R: 160, Crop: 0.875, Top1: 0.80},
		// 128 px: crop 1 better.
		{Hash: "d", R: 128, Crop: 1, Top1: 0.75}, {Hash: "d", R: 128, Crop: 0.875, Top1: 0.70},
	}
	got := chooseCrops(rows, crops)
	want := []struct {
		r       int
		crop    float64
		entries int
	}{{96, 0.875, 2}, {128, 1, 1}, {160, 1, 1}}
	if len(got) != len(want) {
		t.Fatalf("%d choices, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].R != w.r || got[i].Crop != w.crop || got[i].Entries != w.entries {
			t.Errorf("choice %d = %+v, want %d px crop %v over %d entries", i, got[i], w.r, w.crop, w.entries)
		}
	}
	if m := got[0].Means[1]; m < 0.5999 || m > 0.6001 {
		t.Errorf("96 px mean at crop 1 = %v, want 0.60", m)
	}
}

func TestReadCropLog(t *testing.T) {
	row := `{"hash":"h1","r":96,"crop":1,"top1":0.5,"archived_top1":0.5,"supernet":"v1"}` + "\n"
	row2 := `{"hash":"h1","r":96,"crop":0.875,"top1":0.6,"archived_top1":0.5,"supernet":"v1"}` + "\n"
	for _, tc := range []struct {
		name, content string
		rows          int
		size          int // file size after reading; -1: unchanged
		wantErr       string
	}{
		{"whole", row + row2, 2, -1, ""},
		{"torn last line cut off", row + row2[:20], 1, len(row), ""},
		{"last line without newline cut off", row + strings.TrimSuffix(row2, "\n"), 1, len(row), ""},
		{"bad line before the last", row + "garbage\n" + row2, 0, -1, ":2: not a tune-crop row"},
		{"other weights", strings.Replace(row, "v1", "v0", 1), 0, -1, `supernet "v0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "log.jsonl")
			os.WriteFile(p, []byte(tc.content), 0o644)
			got, err := readCropLog(p, "v1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.rows {
				t.Fatalf("%d rows, %v; want %d", len(got), err, tc.rows)
			}
			size := len(tc.content)
			if tc.size >= 0 {
				size = tc.size
			}
			if fi, _ := os.Stat(p); fi.Size() != int64(size) {
				t.Fatalf("file size %d, want %d", fi.Size(), size)
			}
		})
	}
	if got, err := readCropLog(filepath.Join(t.TempDir(), "none"), "v1"); err != nil || len(got) != 0 {
		t.Fatalf("missing log: %v, %v", got, err)
	}
}
