package importer

import (
	"context"
	"math"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/natgw/natgw/dataset"
	"github.com/natgw/natgw/exporter"
	"github.com/natgw/natgw/onnxrt"
	"github.com/natgw/natgw/tflite"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestMobileNetV2TinyImageNet imports the real quantized MobileNetV2 and classifies
// Tiny-ImageNet val at 224 px with the Go forward pass and with onnxruntime on the ONNX
// export. NATGW_IMPORT_CALIB (default 64 train images) and NATGW_IMPORT_EVAL (default 400
// val images; 2000 is the whole split) size it.
func TestMobileNetV2TinyImageNet(t *testing.T) {
	modelPath := sharedPath(t, "data/pretrained-mobilenet-tflite/mobilenet_v2_1.0_224_quant.tflite")
	labelsPath := sharedPath(t, "data/pretrained-mobilenet-tflite/imagenet_labels.txt")
	tiny := sharedPath(t, "data/tinyimagenet")
	if testing.Short() {
		t.Skip("imports and evaluates a 300 M-MAdd network: minutes of CPU")
	}
	ctx := context.Background()
	const res = 224
	data, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tflite.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	lf, err := os.Open(labelsPath)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := ReadLabels(lf)
	lf.Close()
	if err != nil || len(labels) != 1001 || labels[0] != "background" {
		t.Fatalf("labels: %d lines, err %v", len(labels), err)
	}

	train, err := dataset.Open(tiny, "train")
	if err != nil {
		t.Fatal(err)
	}
	pp := Preprocess(res)
	calibLoader, err := dataset.NewLoader(dataset.Config{Set: train.Subset(envInt("NATGW_IMPORT_CALIB", 64), 1), Spec: pp, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	sn, rep, err := Import(ctx, m, Options{Calib: LoaderBatches(calibLoader, res)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("import: %+v", *rep)
	if rep.Convs != 53 || rep.Residuals != 10 || rep.Kernel != 3 || rep.Classes != 1001 {
		t.Fatalf("report %+v", *rep)
	}

	val, err := dataset.Open(tiny, "val")
	if err != nil {
		t.Fatal(err)
	}
	idx, unmatched := MatchClasses(val.Labels, labels)
	if len(unmatched) > 0 {
		t.Errorf("%d Tiny-ImageNet classes have no ImageNet label: %q", len(unmatched), unmatched)
	}
	for i := 1; i < len(idx); i++ {
		if idx[i] <= idx[i-1] {
			t.Errorf("class %d (%s) maps to %d after %d: not in WordNet order", i, val.Classes[i], idx[i], idx[i-1])
		}
	}
	evalSet := val.Subset(envInt("NATGW_IMPORT_EVAL", 400), 2)
	loader, err := dataset.NewLoader(dataset.Config{Set: evalSet, Spec: pp, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}

	spec := sn.Spec
	sub, err := sn.Extract(SourceArch(spec, 3, res))
	if err != nil {
		t.Fatal(err)
	}
	net := sub.Compile()
	var sess *onnxrt.Session
	if _, err := onnxrt.ResolveLibraryPath(onnxrt.Config{}); err == nil {
		env, err := onnxrt.NewEnv(onnxrt.Config{IntraOpThreads: 2, InterOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer env.Close()
		model, err := exporter.Export(sub, exporter.Options{Task: "imagenet", Labels: labels, Preprocess: &pp})
		if err != nil {
			t.Fatal(err)
		}
		if sess, err = env.NewSession(model); err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
	} else if os.Getenv("NATGW_REQUIRE_ORT") == "1" {
		t.Fatal(err)
	} else {
		t.Log("onnxruntime missing; only the Go forward pass is checked: ", err)
	}
	run, err := tflite.NewRunner(m)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := m.Main()
	logitsTensor := sg.Operators[len(sg.Operators)-2].Inputs[0]

	var goScore, ortScore score
	agree, total := 0, 0
	var maxORTDiff float64
	first := true
	err = loader.Epoch(ctx, 0, func(b dataset.Batch) error {
		x := b.X[:b.N*3*res*res]
		y, err := net.Forward(ctx, x, b.N, res, res)
		if err != nil {
			return err
		}
		if first {
			// Real weights: the supernet (k=3 and the centred k=7) reproduces the float graph.
			first = false
			ref, err := run.Run(ctx, x[:2*3*res*res], 2, res, res, []int{logitsTensor}, nil)
			if err != nil {
				return err
			}
			if d := maxRelDiff(y[:2*1001], ref[0]); d > 1e-4 {
				t.Errorf("k=3 subnet vs TFLite float graph: %.2e", d)
			}
			big, err := sn.Extract(spec.Largest())
			if err != nil {
				return err
			}
			y7, err := big.Compile().Forward(ctx, x[:2*3*res*res], 2, res, res)
			if err != nil {
				return err
			}
			if d := maxRelDiff(y7, ref[0]); d > 1e-4 {
				t.Errorf("largest subnet (k=7) vs TFLite float graph: %.2e", d)
			}
		}
		goScore.add(y, b.Labels[:b.N], idx)
		if sess != nil {
			yo, _, err := sess.Run(ctx, x, []int64{int64(b.N), 3, res, res})
			if err != nil {
				return err
			}
			ortScore.add(yo, b.Labels[:b.N], idx)
			for i := range b.N {
				if argmax(y[i*1001:(i+1)*1001]) == argmax(yo[i*1001:(i+1)*1001]) {
					agree++
				}
				total++
			}
			maxORTDiff = max(maxORTDiff, maxRelDiff(yo, y))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Go forward,  %d images: %s", goScore.n, goScore)
	if sess != nil {
		t.Logf("onnxruntime, %d images: %s; top-1 agreement %d/%d, max relative logit difference %.2e", ortScore.n, ortScore, agree, total, maxORTDiff)
		if agree < total*99/100 || maxORTDiff > 1e-3 {
			t.Errorf("onnxruntime and Go disagree: %d/%d top-1, %.2e", agree, total, maxORTDiff)
		}
	}
	// Chance is 0.1% (1001-way); the published model gets about 23% on 64-px images upsampled.
	if top1 := goScore.pct(goScore.top1); top1 < 12 {
		t.Errorf("1001-way top-1 %.1f%%, want well above chance (≥ 12%%)", top1)
	}
}

// score counts top-1/top-5 hits over all 1001 logits and over the matched classes only.
type score struct {
	n, top1, top5, rtop1, rtop5 int
}

func (s *score) add(logits []float32, labels []int, idx []int) {
	classes := len(logits) / len(labels)
	for i, l := range labels {
		row := logits[i*classes : (i+1)*classes]
		want := idx[l]
		s.n++
		if want < 0 {
			continue
		}
		all := topK(row, nil, 5)
		sub := topK(row, idx, 5)
		s.top1 += b2i(all[0] == want)
		s.top5 += b2i(contains(all, want))
		s.rtop1 += b2i(sub[0] == want)
		s.rtop5 += b2i(contains(sub, want))
	}
}

func (s score) pct(v int) float64 { return 100 * float64(v) / float64(max(s.n, 1)) }

func (s score) String() string {
	return "1001-way top-1/top-5 " + f1(s.pct(s.top1)) + "/" + f1(s.pct(s.top5)) +
		", restricted to the matched classes " + f1(s.pct(s.rtop1)) + "/" + f1(s.pct(s.rtop5))
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func contains(v []int, x int) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

// topK returns the k indices with the largest logits, among only (if not nil) or all.
func topK(row []float32, only []int, k int) []int {
	cand := only
	if cand == nil {
		cand = make([]int, len(row))
		for i := range cand {
			cand[i] = i
		}
	} else {
		cand = append([]int(nil), cand...)
	}
	sort.SliceStable(cand, func(a, b int) bool { return row[cand[a]] > row[cand[b]] })
	return cand[:min(k, len(cand))]
}

func argmax(v []float32) int {
	best, bv := 0, float32(math.Inf(-1))
	for i, x := range v {
		if x > bv {
			best, bv = i, x
		}
	}
	return best
}
