package importer

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/tflite"
)

// maxRelDiff is max|a−b| / (1 + max|b|).
func maxRelDiff(a, b []float32) float64 {
	var d, m float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
		m = max(m, math.Abs(float64(b[i])))
	}
	return d / (1 + m)
}

func forward(t *testing.T, sn *supernet.Supernet, a supernet.Arch, x []float32, n, res int) []float32 {
	t.Helper()
	sub, err := sn.Extract(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := sub.Compile().Forward(context.Background(), x, n, res, res)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func TestImportSynthetic(t *testing.T) {
	ctx := context.Background()
	spec := supernet.MobileNetV2Space(1001)
	m, err := tflite.Parse(syntheticMobileNetV2(1, spec, 3).Marshal())
	if err != nil {
		t.Fatal(err)
	}
	const res = 96
	calib, calibX := randomBatches(2, 6, 6, res) // one batch: recalibration must then reproduce the statistics
	sn, rep, err := Import(ctx, m, Options{Calib: calib, Meta: map[string]string{"id": "synthetic"}})
	if err != nil {
		t.Fatal(err)
	}
	want := Report{Convs: 53, Blocks: 16, Residuals: 10, Kernel: 3, Classes: 1001, CalibImages: 6, CalibHeight: res, CalibWidth: res}
	got := *rep
	got.DeadChannels, got.Permuted = 0, 0
	if got != want {
		t.Errorf("report %+v, want %+v", got, want)
	}
	if rep.Permuted < 12 {
		t.Errorf("only %d of 16 blocks reordered; random weights should reorder nearly all", rep.Permuted)
	}
	if sn.Meta["id"] != "synthetic" || sn.Meta["source"] != "tflite" {
		t.Errorf("meta %v", sn.Meta)
	}

	// The TFLite graph run in float is the reference the supernet must reproduce, at k = 3
	// (the TensorFlow kernel) and at k = 7 (the centred kernel in its zero frame).
	_, x := randomBatches(3, 2, 2, res)
	run, err := tflite.NewRunner(m)
	if err != nil {
		t.Fatal(err)
	}
	sg, _ := m.Main()
	logitsTensor := sg.Operators[len(sg.Operators)-2].Inputs[0] // the reshape's input
	ref, err := run.Run(ctx, x, 2, res, res, []int{logitsTensor}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []supernet.Arch{SourceArch(spec, 3, res), SourceArch(spec, 7, res), SourceArch(spec, 5, res)} {
		if d := maxRelDiff(forward(t, sn, a, x, 2, res), ref[0]); d > 1e-4 {
			t.Errorf("arch k=%d: supernet vs TFLite float graph differ by %.2e (relative)", a.KS[0], d)
		}
	}

	// Middle channels are sorted: the project conv's input-column L1 norms never increase.
	for b := range spec.NumBlocks() {
		p, _ := sn.Param(blockKey(b, "point_linear.conv.conv.weight"))
		out, mid := p.Shape[0], p.Shape[1]
		prev := math.Inf(1)
		for j := range mid {
			var s float64
			for o := range out {
				s += math.Abs(float64(p.Data[o*mid+j]))
			}
			if s > prev*(1+1e-6) {
				t.Fatalf("block %d: column %d has L1 %.4g after %.4g", b+1, j, s, prev)
			}
			prev = s
		}
	}

	// Train-mode BatchNorm: recalibrating on the calibration batch itself must give back the
	// measured statistics, so fine-tuning starts from the imported function.
	sub, err := sn.Extract(SourceArch(spec, 3, res))
	if err != nil {
		t.Fatal(err)
	}
	before := sub.Blocks[5].Depthwise.BN.Var[:8]
	before = append([]float32(nil), before...)
	if err := sub.Recalibrate(ctx, calib); err != nil {
		t.Fatal(err)
	}
	if d := maxRelDiff(sub.Blocks[5].Depthwise.BN.Var[:8], before); d > 1e-3 {
		t.Errorf("recalibrated variances %v, imported %v", sub.Blocks[5].Depthwise.BN.Var[:8], before)
	}
	y, err := sub.Compile().Forward(ctx, x, 2, res, res)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxRelDiff(y, ref[0]); d > 1e-3 {
		t.Errorf("after recalibration the logits moved by %.2e (relative)", d)
	}
	_ = calibX
}

func blockKey(b int, suffix string) string {
	return "blocks." + itoa(b+1) + ".conv." + suffix
}

func itoa(v int) string {
	if v < 10 {
		return string(rune('0' + v))
	}
	return itoa(v/10) + string(rune('0'+v%10))
}

func TestImportDropBackground(t *testing.T) {
	ctx := context.Background()
	spec := supernet.MobileNetV2Space(1001)
	m := syntheticMobileNetV2(4, spec, 3)
	calib, _ := randomBatches(5, 2, 2, 96)
	full, _, err := Import(ctx, m, Options{Calib: calib})
	if err != nil {
		t.Fatal(err)
	}
	drop, rep, err := Import(ctx, m, Options{Calib: calib, DropBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Classes != 1000 || drop.Spec.Classes != 1000 {
		t.Fatalf("classes %d / %d, want 1000", rep.Classes, drop.Spec.Classes)
	}
	fw, dw := full.Tensor("classifier.linear.weight"), drop.Tensor("classifier.linear.weight")
	fb, db := full.Tensor("classifier.linear.bias"), drop.Tensor("classifier.linear.bias")
	if len(dw) != 1000*1280 || dw[0] != fw[1280] || dw[len(dw)-1] != fw[len(fw)-1] || db[0] != fb[1] {
		t.Fatal("the 1000-way head is not rows 1..1000 of the 1001-way one")
	}
}

func TestImportErrors(t *testing.T) {
	ctx := context.Background()
	spec := supernet.MobileNetV2Space(1001)
	calib, _ := randomBatches(6, 1, 1, 96)
	tests := []struct {
		name   string
		mutate func(m *tflite.Model)
		opt    Options
		want   string
	}{
		{"no calibration", nil, Options{}, "calibration"},
		{"spec classes", nil, Options{Calib: calib, Spec: supernet.MobileNetV2Space(10)}, "classes"},
		{"stride", func(m *tflite.Model) { m.Subgraphs[0].Operators[4].Options.StrideW = 1 }, Options{Calib: calib}, "stride"},
		{"padding", func(m *tflite.Model) { m.Subgraphs[0].Operators[0].Options.Padding = tflite.PaddingValid }, Options{Calib: calib}, "padding"},
		{"activation", func(m *tflite.Model) { m.Subgraphs[0].Operators[2].Options.Activation = tflite.ActReLU6 }, Options{Calib: calib}, "activation"},
		{"missing residual", func(m *tflite.Model) {
			// Feed the conv after the first ADD from the project conv directly, skipping the ADD.
			sg := &m.Subgraphs[0]
			for i, op := range sg.Operators {
				if op.Opcode == tflite.OpAdd {
					sg.Operators[i+1].Inputs[0] = op.Inputs[0]
					break
				}
			}
		}, Options{Calib: calib}, "residual"},
		{"wrong conv count", func(m *tflite.Model) {
			sg := &m.Subgraphs[0]
			sg.Operators[1].Opcode = tflite.OpAdd
		}, Options{Calib: calib}, "convolutions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := syntheticMobileNetV2(7, spec, 3)
			if tc.mutate != nil {
				tc.mutate(m)
			}
			_, _, err := Import(ctx, m, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
