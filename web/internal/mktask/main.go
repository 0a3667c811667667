// Command mktask writes a small demo task folder for the web page's end-to-end test: a
// random-weight supernet of a small MobileNetV3-like space, labels, calibration images
// and an archive of subnets with synthetic accuracies (so the front has a shape). With
// -shared it takes the labels from Flowers102's classes.tsv and calibration images from
// its train split, and writes a real test image as PNG for the test to classify.
//
//	go run ./web/internal/mktask -out DIR/models [-shared ../shared] [-png DIR/image.png]
//
// It prints one JSON line: {"task": name, "image": png path or "", "real_image": bool}.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/natgw/natgw/preprocess"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/task"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mktask:", err)
		os.Exit(1)
	}
}

type result struct {
	Task      string `json:"task"`
	Image     string `json:"image"`
	RealImage bool   `json:"real_image"`
	Source    string `json:"source,omitempty"`
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mktask", flag.ContinueOnError)
	out := fs.String("out", "", "folder of task folders to write the task into (required)")
	name := fs.String("name", "flowers-demo", "task name")
	shared := fs.String("shared", "", "shared data folder with data/flowers102 (optional)")
	pngPath := fs.String("png", "", "write a test image here as PNG (a Flowers102 test image with -shared, else synthetic)")
	seed := fs.Uint64("seed", 1, "supernet seed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	flowers := ""
	if *shared != "" {
		flowers = filepath.Join(*shared, "data", "flowers102")
		if _, err := os.Stat(filepath.Join(flowers, "classes.tsv")); err != nil {
			return fmt.Errorf("-shared: %w", err)
		}
	}
	labels, err := labelsFor(flowers)
	if err != nil {
		return err
	}
	dir := filepath.Join(*out, *name)
	if err := writeTask(dir, *name, labels, *seed); err != nil {
		return err
	}
	if err := writeCalib(filepath.Join(dir, task.CalibDir), flowers); err != nil {
		return err
	}
	if _, err := task.Load(dir); err != nil {
		return fmt.Errorf("the written task does not load: %w", err)
	}
	res := result{Task: *name}
	if *pngPath != "" {
		src, err := writeTestPNG(*pngPath, flowers)
		if err != nil {
			return err
		}
		res.Image, res.RealImage, res.Source = *pngPath, flowers != "", src
	}
	return json.NewEncoder(stdout).Encode(res)
}

// demoSpec is a small MobileNetV3-like space: quick to export and to run in a browser.
func demoSpec(classes int) *supernet.Spec {
	return &supernet.Spec{
		Name: "demo_mbv3_small", Classes: classes, Resolutions: []int{64, 80, 96, 112},
		Kernels: []int{3, 5, 7}, Expands: []int{3, 4, 6},
		Divisor: 8, SEReduction: 4, Padding: supernet.PadSymmetric, BNEps: 1e-5, BNMomentum: 0.1,
		Stem:  supernet.Conv{Out: 16, Kernel: 3, Stride: 2, Act: supernet.ActHSwish},
		First: supernet.FirstBlock{Out: 16, Kernel: 3, Stride: 1, Act: supernet.ActReLU},
		Stages: []supernet.Stage{
			{Width: 24, Stride: 2, Act: supernet.ActReLU, Depths: []int{1, 2, 3}},
			{Width: 40, Stride: 2, Act: supernet.ActReLU, SE: true, Depths: []int{1, 2, 3}},
			{Width: 80, Stride: 2, Act: supernet.ActHSwish, Depths: []int{1, 2, 3}},
			{Width: 112, Stride: 2, Act: supernet.ActHSwish, SE: true, Depths: []int{1, 2, 3}},
		},
		FinalExpand: &supernet.Pointwise{Out: 336, BN: true, Act: supernet.ActHSwish},
		FeatureMix:  &supernet.Pointwise{Out: 512, Act: supernet.ActHSwish},
	}
}

func writeTask(dir, name string, labels []string, seed uint64) error {
	spec := demoSpec(len(labels))
	sn, err := supernet.Random(spec, seed)
	if err != nil {
		return err
	}
	sn.Meta[supernet.MetaVersion] = "demo-1"
	// Random weights give nearly uniform class probabilities; a larger classifier makes
	// the top-5 readable and the top-1 margin wide.
	for i, w := range sn.Tensor("classifier.linear.weight") {
		sn.Tensor("classifier.linear.weight")[i] = 16 * w
	}
	// Random archs plus the uniform ones; accuracy is a synthetic concave function of
	// MAdds with noise, so the plot has a front and archive points below it.
	archive := &task.Archive{}
	rng := rand.New(rand.NewPCG(seed, 2))
	var archs []supernet.Arch
	for _, r := range spec.Resolutions {
		for _, k := range spec.Kernels {
			for _, e := range spec.Expands {
				archs = append(archs, spec.Uniform(k, e, 3, r), spec.Uniform(k, e, 1, r))
			}
		}
	}
	for range 60 {
		a := spec.Largest()
		for i := range a.KS {
			a.KS[i] = spec.Kernels[rng.IntN(len(spec.Kernels))]
			a.E[i] = spec.Expands[rng.IntN(len(spec.Expands))]
		}
		for i := range a.D {
			a.D[i] = spec.Stages[i].Depths[rng.IntN(len(spec.Stages[i].Depths))]
		}
		a.R = spec.Resolutions[rng.IntN(len(spec.Resolutions))]
		archs = append(archs, a)
	}
	var lo, hi float64 = math.Inf(1), 0
	type sized struct {
		a      supernet.Arch
		madds  int64
		params int64
	}
	var all []sized
	for _, a := range archs {
		c, err := spec.Canonical(a)
		if err != nil {
			return err
		}
		sub, err := sn.Extract(c)
		if err != nil {
			return err
		}
		n := sub.Count()
		all = append(all, sized{c, n.MAdds, n.Params})
		lo, hi = math.Min(lo, float64(n.MAdds)), math.Max(hi, float64(n.MAdds))
	}
	for _, s := range all {
		t := math.Log(float64(s.madds)/lo) / math.Log(hi/lo)
		top1 := 0.55 + 0.3*math.Sqrt(t) - rng.Float64()*0.06
		archive.Put(task.Entry{Arch: s.a, Hash: s.a.Hash(), MAdds: s.madds, Params: s.params,
			Top1: math.Round(top1*1e4) / 1e4, Split: task.SplitVal, Source: task.SourceSynthetic})
	}
	tk := &task.Task{
		Manifest: task.Manifest{
			Name: name, Description: "demo: random weights, synthetic accuracies",
			Preprocess: demoPreprocess(),
		},
		Supernet: sn, Labels: labels, Archive: archive,
	}
	return task.Save(dir, tk, supernet.SaveOptions{})
}

// demoPreprocess uses a centre crop so that the browser's crop arithmetic is exercised.
func demoPreprocess() preprocess.Spec {
	p := preprocess.DefaultSpec(0)
	p.CropFraction = 0.875
	return p
}

func labelsFor(flowers string) ([]string, error) {
	if flowers == "" {
		labels := make([]string, 10)
		for i := range labels {
			labels[i] = fmt.Sprintf("class %d", i)
		}
		return labels, nil
	}
	f, err := os.Open(filepath.Join(flowers, "classes.tsv"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		cols := strings.Split(sc.Text(), "\t")
		if line == 0 || len(cols) < 3 {
			continue // header
		}
		labels = append(labels, cols[2])
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		return nil, errors.New("classes.tsv has no classes")
	}
	return labels, nil
}

// writeCalib writes the calibration images: the first train image of a few classes, or
// synthetic ones.
func writeCalib(dir string, flowers string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if flowers != "" {
		classes, err := sortedDirs(filepath.Join(flowers, "train"))
		if err != nil {
			return err
		}
		n := 0
		for _, c := range classes {
			files, err := sortedFiles(filepath.Join(flowers, "train", c))
			if err != nil || len(files) == 0 {
				continue
			}
			data, err := os.ReadFile(filepath.Join(flowers, "train", c, files[0]))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, c+filepath.Ext(files[0])), data, 0o644); err != nil {
				return err
			}
			if n++; n == 8 {
				break
			}
		}
		if n > 0 {
			return nil
		}
	}
	for i := range 8 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("synthetic-%d.png", i)), syntheticPNG(uint64(i), 96, 80), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeTestPNG converts the first Flowers102 test image to PNG (the browser's and the
// gateway's JPEG decoders may differ in the last bits, PNG decoding is exact), or writes
// a synthetic image. It returns the source's path.
func writeTestPNG(path, flowers string) (string, error) {
	var data []byte
	src := "synthetic"
	if flowers != "" {
		classes, err := sortedDirs(filepath.Join(flowers, "test"))
		if err != nil {
			return "", err
		}
		for _, c := range classes {
			files, err := sortedFiles(filepath.Join(flowers, "test", c))
			if err != nil || len(files) == 0 {
				continue
			}
			src = filepath.Join(flowers, "test", c, files[0])
			raw, err := os.ReadFile(src)
			if err != nil {
				return "", err
			}
			img, err := preprocess.DecodeBytes(raw, preprocess.Limits{})
			if err != nil {
				return "", fmt.Errorf("%s: %w", src, err)
			}
			var buf bytes.Buffer
			if err := png.Encode(&buf, toNRGBA(img)); err != nil {
				return "", err
			}
			data = buf.Bytes()
			break
		}
		if data == nil {
			return "", errors.New("no Flowers102 test image found")
		}
	} else {
		data = syntheticPNG(42, 500, 375)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return src, os.WriteFile(path, data, 0o644)
}

func toNRGBA(m *preprocess.RGB) *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	for i := range m.W * m.H {
		copy(out.Pix[4*i:4*i+3], m.Pix[3*i:3*i+3])
		out.Pix[4*i+3] = 255
	}
	return out
}

func syntheticPNG(seed uint64, w, h int) []byte {
	rng := rand.New(rand.NewPCG(seed, 9))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	cx, cy := float64(w)*(0.3+0.4*rng.Float64()), float64(h)*(0.3+0.4*rng.Float64())
	for y := range h {
		for x := range w {
			d := math.Hypot(float64(x)-cx, float64(y)-cy)
			img.SetNRGBA(x, y, color.NRGBA{uint8(128 + 127*math.Sin(d/9)), uint8(x * 255 / w), uint8(rng.IntN(64) + y*191/h), 255})
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img)
	return buf.Bytes()
}

func sortedDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func sortedFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
