package task

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
)

func tinySpec() *supernet.Spec {
	return &supernet.Spec{
		Name: "tiny", Classes: 3, Resolutions: []int{32, 40}, Kernels: []int{3, 5}, Expands: []int{2, 3}, Divisor: 8,
		SEReduction: 4, Padding: supernet.PadSymmetric, BNEps: 1e-5, BNMomentum: 0.1,
		Stem:   supernet.Conv{Out: 8, Kernel: 3, Stride: 2, Act: supernet.ActReLU},
		First:  supernet.FirstBlock{Out: 8, Kernel: 3, Stride: 1, Act: supernet.ActReLU},
		Stages: []supernet.Stage{{Width: 16, Stride: 2, Act: supernet.ActHSwish, SE: true, Depths: []int{1, 2}}},
	}
}

func newTask(t *testing.T) (*Task, string) {
	t.Helper()
	spec := tinySpec()
	sn, err := supernet.Random(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := &Archive{SupernetVersion: "random-1"}
	for _, arch := range []supernet.Arch{spec.Smallest(), spec.Largest()} {
		sub, _ := sn.Extract(arch)
		c := sub.Count()
		a.Put(Entry{Arch: arch, Hash: arch.Hash(), MAdds: c.MAdds, Params: c.Params, Top1: float64(c.MAdds) / 1e8, Split: SplitVal})
	}
	tk := &Task{Manifest: Manifest{Name: "tiny", Preprocess: preprocess.DefaultSpec(0)}, Supernet: sn,
		Labels: []string{"a", "b", "c"}, Archive: a}
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := Save(dir, tk, supernet.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return tk, dir
}

func TestSaveLoad(t *testing.T) {
	tk, dir := newTask(t)
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Name != "tiny" || len(back.Labels) != 3 || back.Archive.Len() != 2 || back.Supernet.Spec.Name != "tiny" {
		t.Fatalf("loaded %+v", back.Manifest)
	}
	if got := back.Preprocess(40).Resolution; got != 40 {
		t.Fatalf("preprocess resolution %d", got)
	}
	all, err := LoadAll(filepath.Dir(dir))
	if err != nil || len(all) != 1 {
		t.Fatalf("LoadAll: %v %d", err, len(all))
	}
	if tk.Archive.Snapshot()[0].Hash != back.Archive.Snapshot()[0].Hash {
		t.Fatal("archive changed on the round trip")
	}
	// A models folder may link to task folders kept elsewhere; files beside them are ignored.
	served := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(served, "tiny")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(served, "notes.txt"), []byte("x"), 0o644)
	if all, err := LoadAll(served); err != nil || len(all) != 1 || all[0].Name != "tiny" {
		t.Fatalf("LoadAll through a link: %v %d", err, len(all))
	}
}

func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(dir string)
		want string
	}{
		{"label count", func(dir string) { os.WriteFile(filepath.Join(dir, LabelsFile), []byte("a\nb\n"), 0o644) }, "2 labels, the supernet has 3 classes"},
		{"blank label", func(dir string) { os.WriteFile(filepath.Join(dir, LabelsFile), []byte("a\n\nc\n"), 0o644) }, "empty label"},
		{"bad name", func(dir string) {
			os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"name":"Bad Name","preprocess":`+ppJSON()+`}`), 0o644)
		}, "must match"},
		{"unknown manifest field", func(dir string) {
			os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"name":"tiny","x":1,"preprocess":`+ppJSON()+`}`), 0o644)
		}, "unknown field"},
		{"test split in archive", func(dir string) { rewriteArchive(t, dir, `"split": "val"`, `"split": "test"`) }, `split "test"`},
		{"hash mismatch", func(dir string) { rewriteArchive(t, dir, `"hash": "`, `"hash": "00`) }, "does not match"},
		{"arch outside space", func(dir string) { rewriteArchive(t, dir, `"r": 32`, `"r": 33`) }, "r: 33 not in"},
		{"crop out of range", func(dir string) {
			os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"name":"tiny","preprocess":`+ppJSON()+`,"crop_by_resolution":{"32":1.5}}`), 0o644)
		}, "crop_by_resolution[32]: "},
		{"crop at resolution 0", func(dir string) {
			os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"name":"tiny","preprocess":`+ppJSON()+`,"crop_by_resolution":{"0":0.875}}`), 0o644)
		}, "resolution 0 must be positive"},
		{"crop key not a number", func(dir string) {
			os.WriteFile(filepath.Join(dir, ManifestFile), []byte(`{"name":"tiny","preprocess":`+ppJSON()+`,"crop_by_resolution":{"x":0.875}}`), 0o644)
		}, "cannot unmarshal number x"},
		{"missing supernet", func(dir string) { os.Remove(filepath.Join(dir, SupernetFile)) }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, dir := newTask(t)
			tc.mut(dir)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load() = %v, want %q", err, tc.want)
			}
		})
	}
}

func ppJSON() string {
	return `{"resolution":0,"crop_fraction":1,"interpolation":"bilinear","mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5],"channel_order":"RGB","layout":"NCHW"}`
}

func rewriteArchive(t *testing.T, dir, old, new string) {
	p := filepath.Join(dir, ArchiveFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("archive lacks %q", old)
	}
	os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func TestCropByResolution(t *testing.T) {
	tk, dir := newTask(t)
	tk.CropByResolution = map[int]float64{32: 0.875}
	if err := writeJSON(filepath.Join(dir, ManifestFile), tk.Manifest); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		r    int
		crop float64
	}{{32, 0.875}, {40, 1}} {
		if p := back.Preprocess(tc.r); p.Resolution != tc.r || p.CropFraction != tc.crop {
			t.Errorf("Preprocess(%d) = resolution %d crop %v, want crop %v", tc.r, p.Resolution, p.CropFraction, tc.crop)
		}
	}
}

func TestArchiveRemeasure(t *testing.T) {
	a := &Archive{}
	a.Put(Entry{Hash: "m", Top1: 0.5, Split: SplitVal})
	a.Put(Entry{Hash: "p", Top1: 0.5, Split: SplitVal, Predicted: true})
	a.SetTestTop1("m", 0.4)
	if !a.Remeasure("m", 0.6) || a.Remeasure("p", 0.6) || a.Remeasure("x", 0.6) {
		t.Fatal("Remeasure must find exactly the measured entry")
	}
	if e, _ := a.Lookup("m"); e.Top1 != 0.6 || e.TestTop1 != nil {
		t.Fatalf("remeasured entry %+v: want top1 0.6 and no test accuracy", e)
	}
	if e, _ := a.Lookup("p"); e.Top1 != 0.5 {
		t.Fatalf("predicted entry changed: %+v", e)
	}
}

func TestArchivePutAndFront(t *testing.T) {
	a := &Archive{}
	e := func(h string, madds int64, top1 float64, predicted bool) Entry {
		return Entry{Hash: h, MAdds: madds, Top1: top1, Split: SplitVal, Predicted: predicted}
	}
	if !a.Put(e("p", 10, 0.5, true)) || !a.Put(e("p", 10, 0.4, false)) {
		t.Fatal("a measurement must replace a prediction")
	}
	if a.Put(e("p", 10, 0.9, true)) || a.Put(e("p", 10, 0.9, false)) {
		t.Fatal("a measured entry must not be replaced")
	}
	for _, x := range []Entry{e("a", 5, 0.3, false), e("b", 20, 0.35, false), e("c", 30, 0.6, false), e("d", 40, 0.7, true)} {
		a.Put(x)
	}
	var got []string
	for _, f := range Front(a.Snapshot()) {
		got = append(got, f.Hash)
	}
	if strings.Join(got, ",") != "a,p,c" {
		t.Fatalf("front %v, want a,p,c (b dominated, d predicted)", got)
	}
}

func TestRecalibrateUsesCalibImages(t *testing.T) {
	tk, dir := newTask(t)
	os.MkdirAll(filepath.Join(dir, CalibDir), 0o755)
	img := preprocess.NewRGB(20, 20)
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	tk.Calib = []*preprocess.RGB{img, img}
	sub, err := tk.Supernet.Extract(tk.Supernet.Spec.Largest())
	if err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), sub.Stem.BN.Mean...)
	if err := tk.Recalibrate(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range before {
		same = same && before[i] == sub.Stem.BN.Mean[i]
	}
	if same {
		t.Fatal("recalibration left the stem's running mean unchanged")
	}
}

func FuzzLoadArchive(f *testing.F) {
	spec := tinySpec()
	f.Add([]byte(`{"entries":[{"arch":` + spec.Smallest().String() + `,"split":"val","top1":0.5}]}`))
	f.Add([]byte(`{"entries":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "a.json")
		os.WriteFile(p, data, 0o644)
		a, err := LoadArchive(p, spec)
		if err != nil {
			return
		}
		for _, e := range a.Snapshot() {
			if e.Split != SplitVal || spec.ValidateArch(e.Arch) != nil {
				t.Fatalf("accepted entry %+v", e)
			}
		}
	})
}
