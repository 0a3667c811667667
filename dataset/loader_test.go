package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/preprocess"
)

type batchCopy struct {
	X      []float32
	Labels []int
	Paths  []string
	R      int
}

func collect(t *testing.T, l *Loader, epoch int) []batchCopy {
	t.Helper()
	var out []batchCopy
	err := l.Epoch(context.Background(), epoch, func(b Batch) error {
		if len(b.X) != b.N*3*b.R*b.R || len(b.Labels) != b.N || len(b.Paths) != b.N {
			t.Errorf("inconsistent batch: N=%d, R=%d, %d values, %d labels, %d paths", b.N, b.R, len(b.X), len(b.Labels), len(b.Paths))
		}
		if len(l.cfg.Resolutions) == 0 && b.R != l.cfg.Spec.Resolution {
			t.Errorf("batch at %d px, want the spec's %d", b.R, l.cfg.Spec.Resolution)
		}
		out = append(out, batchCopy{slices.Clone(b.X), slices.Clone(b.Labels), slices.Clone(b.Paths), b.R})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// syncBuffer is a bytes.Buffer safe for the concurrent log writes of workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoaderSkipsCorruptFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "train", "a", "good.png"), pngBytes(t, noisyImage(12, 9, 1)))
	writeFile(t, filepath.Join(root, "train", "a", "grey.jpg"), grayJPEG(t, 10, 14))
	// A JPEG header followed by garbage: decodes to an error, not a panic.
	writeFile(t, filepath.Join(root, "train", "b", "corrupt.jpg"), append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte{0x42}, 200)...))
	writeFile(t, filepath.Join(root, "train", "b", "good.jpg"), jpegBytes(t, noisyImage(8, 8, 2)))
	set, err := Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	for _, aug := range []*Augment{nil, {RandomResizedCrop: true, HFlip: true, ColorJitter: 0.3}} {
		var logs syncBuffer
		l, err := NewLoader(Config{Set: set, Spec: preprocess.DefaultSpec(16), Batch: 3, Workers: 2, Augment: aug,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		batches := collect(t, l, 0)
		var paths []string
		var labels []int
		for _, b := range batches {
			paths = append(paths, b.Paths...)
			labels = append(labels, b.Labels...)
		}
		if l.Skipped() != 1 {
			t.Errorf("Skipped() = %d, want 1", l.Skipped())
		}
		if len(paths) != 3 || slices.ContainsFunc(paths, func(p string) bool { return strings.Contains(p, "corrupt") }) {
			t.Errorf("delivered %v", paths)
		}
		if !slices.Equal(labels, []int{0, 0, 1}) {
			t.Errorf("labels %v", labels)
		}
		if !strings.Contains(logs.String(), "corrupt.jpg") || !strings.Contains(logs.String(), "WARN") {
			t.Errorf("no warning naming the file: %q", logs.String())
		}
		// The greyscale image came through as R=G=B (before normalisation).
		for _, b := range batches {
			for i, p := range b.Paths {
				if !strings.HasSuffix(p, "grey.jpg") || aug != nil {
					continue
				}
				x := b.X[i*3*256 : (i+1)*3*256]
				s := l.cfg.Spec
				for j := range 256 {
					r := x[j]*s.Std[0] + s.Mean[0]
					g := x[256+j]*s.Std[1] + s.Mean[1]
					if math.Abs(float64(r-g)) > 1e-5 {
						t.Fatalf("grey pixel %d: r=%v g=%v", j, r, g)
					}
				}
			}
		}
	}
}

func TestLoaderEvalIsSpecTensor(t *testing.T) {
	root := t.TempDir()
	makeSet(t, root, "val", []string{"x", "y"}, 3)
	set, err := Open(root, "val")
	if err != nil {
		t.Fatal(err)
	}
	spec := preprocess.DefaultSpec(24)
	spec.CropFraction = 0.875
	l, err := NewLoader(Config{Set: set, Spec: spec, Batch: 4, Workers: 3, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	batches := collect(t, l, 0)
	if len(batches) != 2 || len(batches[0].Paths) != 4 || len(batches[1].Paths) != 2 {
		t.Fatalf("batch layout wrong: %d batches", len(batches))
	}
	k := 0
	for _, b := range batches {
		for i, p := range b.Paths {
			if p != set.Items[k].Path || b.Labels[i] != set.Items[k].Label {
				t.Fatalf("item %d: %s, want %s (no shuffle keeps order)", k, p, set.Items[k].Path)
			}
			k++
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			img, err := preprocess.Decode(f, preprocess.Limits{})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, spec.TensorLen())
			if err := spec.Tensor(img, want); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.X[i*len(want):(i+1)*len(want)], want) {
				t.Fatalf("%s: loader output differs from Spec.Tensor", p)
			}
		}
	}
}

func TestLoaderDeterministic(t *testing.T) {
	root := t.TempDir()
	makeSet(t, root, "train", []string{"a", "b", "c"}, 8)
	set, err := Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	aug := &Augment{RandomResizedCrop: true, HFlip: true, ColorJitter: 0.4}
	run := func(workers int, seed uint64, epoch int, cache bool, a *Augment) []batchCopy {
		l, err := NewLoader(Config{Set: set, Spec: preprocess.DefaultSpec(20), Batch: 5, Shuffle: true, Seed: seed,
			Augment: a, Workers: workers, CacheDecoded: cache, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		out := collect(t, l, epoch)
		if cache { // second pass from the cache must match the first
			if again := collect(t, l, epoch); !equalBatches(out, again) {
				t.Fatal("cached epoch differs from first epoch")
			}
		}
		return out
	}
	for _, a := range []*Augment{nil, aug} {
		name := "eval"
		if a != nil {
			name = "augment"
		}
		t.Run(name, func(t *testing.T) {
			base := run(1, 7, 0, false, a)
			if len(base) != 5 { // 24 items, batch 5
				t.Fatalf("%d batches", len(base))
			}
			for _, w := range []int{4, 2} {
				if !equalBatches(base, run(w, 7, 0, false, a)) {
					t.Fatalf("Workers=%d differs from Workers=1", w)
				}
			}
			if !equalBatches(base, run(4, 7, 0, true, a)) {
				t.Fatal("CacheDecoded changes the output")
			}
			if equalBatches(base, run(1, 7, 1, false, a)) {
				t.Fatal("epoch 1 equals epoch 0")
			}
			if equalBatches(base, run(1, 8, 0, false, a)) {
				t.Fatal("seed 8 equals seed 7")
			}
		})
	}
}

// TestLoaderResolutions checks elastic-resolution batches: every size drawn, reproducible,
// and each batch exactly what a loader at that one size makes of the same items.
func TestLoaderResolutions(t *testing.T) {
	root := t.TempDir()
	makeSet(t, root, "train", []string{"a", "b", "c"}, 10)
	set, err := Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	aug := &Augment{RandomResizedCrop: true, HFlip: true}
	load := func(workers int, spec int, rs []int) []batchCopy {
		l, err := NewLoader(Config{Set: set, Spec: preprocess.DefaultSpec(spec), Batch: 2, Shuffle: true, Seed: 3,
			Augment: aug, Workers: workers, Resolutions: rs, DropLast: true, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		return collect(t, l, 1)
	}
	rs := []int{12, 20, 28}
	multi := load(1, 16, rs)
	if !equalBatches(multi, load(3, 16, rs)) {
		t.Fatal("Workers=3 differs from Workers=1")
	}
	seen := map[int]int{}
	single := map[int][]batchCopy{}
	for _, r := range rs {
		single[r] = load(2, r, nil)
	}
	for i, b := range multi {
		if !slices.Contains(rs, b.R) {
			t.Fatalf("batch %d at %d px, not one of %v", i, b.R, rs)
		}
		seen[b.R]++
		if want := single[b.R][i]; !equalBatches([]batchCopy{b}, []batchCopy{want}) {
			t.Errorf("batch %d at %d px differs from the single-resolution loader's", i, b.R)
		}
	}
	if len(seen) != len(rs) {
		t.Errorf("sizes drawn %v over %d batches, want all of %v", seen, len(multi), rs)
	}
}

func equalBatches(a, b []batchCopy) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].R != b[i].R || !slices.Equal(a[i].X, b[i].X) || !slices.Equal(a[i].Labels, b[i].Labels) || !slices.Equal(a[i].Paths, b[i].Paths) {
			return false
		}
	}
	return true
}

func TestAugmentSane(t *testing.T) {
	root := t.TempDir()
	makeSet(t, root, "train", []string{"a", "b"}, 6)
	set, err := Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	spec := preprocess.DefaultSpec(32)
	for _, aug := range []Augment{
		{RandomResizedCrop: true},
		{RandomResizedCrop: true, HFlip: true, ColorJitter: 0.4, ScaleMin: 0.3, ScaleMax: 0.6, RatioMin: 0.5, RatioMax: 2},
		{HFlip: true, ColorJitter: 0.9},
	} {
		l, err := NewLoader(Config{Set: set, Spec: spec, Batch: 4, Augment: &aug, DropLast: true, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		plane := 32 * 32
		for epoch := range 3 {
			bs := collect(t, l, epoch)
			if len(bs) != 3 {
				t.Fatalf("DropLast: %d batches, want 3", len(bs))
			}
			for _, b := range bs {
				if len(b.X) != 4*3*plane {
					t.Fatalf("batch has %d values", len(b.X))
				}
				for i, v := range b.X {
					c := (i / plane) % 3
					lo, hi := (0-spec.Mean[c])/spec.Std[c], (1-spec.Mean[c])/spec.Std[c]
					if math.IsNaN(float64(v)) || v < lo-1e-5 || v > hi+1e-5 {
						t.Fatalf("%+v: value %v outside [%v, %v]", aug, v, lo, hi)
					}
				}
			}
		}
	}
	for _, bad := range []Augment{{ScaleMin: 0.5, ScaleMax: 0.2}, {RatioMin: -1, RatioMax: 2}, {ColorJitter: 1}, {ColorJitter: math.NaN()}} {
		if _, err := NewLoader(Config{Set: set, Spec: spec, Batch: 1, Augment: &bad}); err == nil {
			t.Errorf("augment %+v accepted", bad)
		}
	}
}

func TestCropBox(t *testing.T) {
	a := Augment{}.withDefaults()
	r := rand.New(rand.NewPCG(1, 2))
	sizes := [][2]int{{64, 64}, {1, 1}, {2, 300}, {300, 2}, {33, 17}}
	for _, sz := range sizes {
		for range 500 {
			box := a.cropBox(r, sz[0], sz[1])
			if box.Empty() || !box.In(image.Rect(0, 0, sz[0], sz[1])) {
				t.Fatalf("%v: box %v", sz, box)
			}
		}
	}
	// Extreme aspect ratios fall back to a centre crop with the ratio clamped:
	// w = round(2·4/3) = 3, j = (300−3)//2 = 148.
	if box := a.cropBox(r, 300, 2); box != image.Rect(148, 0, 151, 2) {
		t.Errorf("fallback box %v", box)
	}
	// Scale 1 and ratio 1 on a square image is the whole image.
	full := Augment{ScaleMin: 1, ScaleMax: 1, RatioMin: 1, RatioMax: 1}
	if box := full.cropBox(r, 40, 40); box != image.Rect(0, 0, 40, 40) {
		t.Errorf("full box %v", box)
	}
	// Area fractions stay in range when the first try succeeds.
	var sum float64
	for range 2000 {
		box := a.cropBox(r, 100, 100)
		f := float64(box.Dx()*box.Dy()) / 1e4
		sum += f
		if f < 0.07 || f > 1 {
			t.Fatalf("area fraction %v", f)
		}
	}
	if mean := sum / 2000; mean < 0.45 || mean > 0.6 {
		t.Errorf("mean area fraction %v, want about 0.54", mean)
	}
}

func TestFlipAndJitter(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // 3 channels of 2×2
	flipH(x, 2)
	if !slices.Equal(x, []float32{2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11}) {
		t.Fatalf("flip: %v", x)
	}
	r := rand.New(rand.NewPCG(3, 4))
	grey := []float32{100, 100, 100, 100, 100, 100}
	jitter(r, grey, 0) // factors are exactly 1
	if !slices.Equal(grey, []float32{100, 100, 100, 100, 100, 100}) {
		t.Fatalf("zero jitter changed values: %v", grey)
	}
}

func TestEpochStops(t *testing.T) {
	root := t.TempDir()
	makeSet(t, root, "train", []string{"a"}, 12)
	set, err := Open(root, "train")
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLoader(Config{Set: set, Spec: preprocess.DefaultSpec(8), Batch: 2, Workers: 3, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	calls := 0
	if err := l.Epoch(context.Background(), 0, func(Batch) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("fn error: err=%v calls=%d", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = l.Epoch(ctx, 0, func(Batch) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Fatalf("cancel: err=%v calls=%d", err, calls)
	}
	if err := l.Epoch(ctx, 0, func(Batch) error { t.Fatal("called"); return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	if l.Skipped() != 0 {
		t.Fatalf("cancellation counted as skips: %d", l.Skipped())
	}
}

func TestNewLoaderErrors(t *testing.T) {
	set := &Set{Items: []Item{{Path: "x.png"}}}
	ok := Config{Set: set, Spec: preprocess.DefaultSpec(8), Batch: 1}
	for name, mod := range map[string]func(*Config){
		"nil set":                     func(c *Config) { c.Set = nil },
		"empty set":                   func(c *Config) { c.Set = &Set{} },
		"batch 0":                     func(c *Config) { c.Batch = 0 },
		"bad spec":                    func(c *Config) { c.Spec.Resolution = 0 },
		"workers -1":                  func(c *Config) { c.Workers = -1 },
		"resolutions without augment": func(c *Config) { c.Resolutions = []int{8, 16} },
		"resolution 0":                func(c *Config) { c.Augment, c.Resolutions = &Augment{HFlip: true}, []int{8, 0} },
		"resolution too large": func(c *Config) {
			c.Augment, c.Resolutions = &Augment{HFlip: true}, []int{preprocess.MaxResolution + 1}
		},
	} {
		c := ok
		mod(&c)
		if _, err := NewLoader(c); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := NewLoader(ok); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkEvalEpochFlowers measures an eval epoch over flowers102 train.
func BenchmarkEvalEpochFlowers(b *testing.B) {
	set, err := Open(testutil.Shared(b, "data/flowers102"), "train")
	if err != nil {
		b.Fatal(err)
	}
	for _, res := range []int{64, 128} {
		for _, cache := range []bool{false, true} {
			b.Run(fmt.Sprintf("R=%d/cache=%v", res, cache), func(b *testing.B) {
				l, err := NewLoader(Config{Set: set, Spec: preprocess.DefaultSpec(res), Batch: 64, CacheDecoded: cache, Logger: discard()})
				if err != nil {
					b.Fatal(err)
				}
				if cache { // fill the cache outside the timed loop
					if err := l.Epoch(context.Background(), 0, func(Batch) error { return nil }); err != nil {
						b.Fatal(err)
					}
				}
				n := 0
				b.ResetTimer()
				for b.Loop() {
					if err := l.Epoch(context.Background(), 0, func(bt Batch) error { n += bt.N; return nil }); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
			})
		}
	}
}
