package tflite

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// naiveConv is a direct NHWC convolution with TensorFlow SAME padding (batch 1), written
// from the TFLite definition and independent of the runner's kernels: filter [o,kh,kw,i]
// for CONV_2D, [1,kh,kw,c] for depthwise.
func naiveConv(x []float32, h, w, c int, f, bias []float32, fshape []int, stride int, depthwise bool, relu6 bool) ([]float32, int, int, int) {
	kh, kw := fshape[1], fshape[2]
	o := fshape[0]
	if depthwise {
		o = fshape[3]
	}
	oh, ow := (h+stride-1)/stride, (w+stride-1)/stride
	pt := max((oh-1)*stride+kh-h, 0) / 2
	pl := max((ow-1)*stride+kw-w, 0) / 2
	y := make([]float32, oh*ow*o)
	for oy := range oh {
		for ox := range ow {
			for oc := range o {
				s := float64(bias[oc])
				for ky := range kh {
					for kx := range kw {
						iy, ix := oy*stride+ky-pt, ox*stride+kx-pl
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue
						}
						if depthwise {
							s += float64(x[(iy*w+ix)*c+oc]) * float64(f[(ky*kw+kx)*o+oc])
							continue
						}
						for ic := range c {
							s += float64(x[(iy*w+ix)*c+ic]) * float64(f[((oc*kh+ky)*kw+kx)*c+ic])
						}
					}
				}
				if relu6 {
					s = min(max(s, 0), 6)
				}
				y[(oy*ow+ox)*o+oc] = float32(s)
			}
		}
	}
	return y, oh, ow, o
}

func TestRunnerMatchesNaive(t *testing.T) {
	const c, classes, size = 6, 5, 9
	m := tinyModel(4, c, classes, size)
	sg := &m.Subgraphs[0]
	deq := func(i int) []float32 {
		v, err := sg.Tensors[i].Dequantize()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	r := rand.New(rand.NewPCG(5, 6))
	nhwc := make([]float32, size*size*3)
	for i := range nhwc {
		nhwc[i] = float32(r.Float64()*2 - 1)
	}
	// Reference, NHWC.
	a, h, w, _ := naiveConv(nhwc, size, size, 3, deq(1), deq(2), sg.Tensors[1].Shape, 2, false, true)
	b, _, _, _ := naiveConv(a, h, w, c, deq(4), deq(5), sg.Tensors[4].Shape, 1, true, true)
	p, _, _, _ := naiveConv(b, h, w, c, deq(7), deq(8), sg.Tensors[7].Shape, 1, false, false)
	pool := make([]float64, c)
	for i, v := range p {
		pool[i%c] += float64(v + a[i])
	}
	pooled := make([]float32, c)
	for i := range pool {
		pooled[i] = float32(pool[i] / float64(h*w))
	}
	logits, _, _, _ := naiveConv(pooled, 1, 1, c, deq(12), deq(13), sg.Tensors[12].Shape, 1, false, false)

	run, err := NewRunner(m)
	if err != nil {
		t.Fatal(err)
	}
	nchw := make([]float32, len(nhwc))
	for y := range size {
		for x := range size {
			for ch := range 3 {
				nchw[(ch*size+y)*size+x] = nhwc[(y*size+x)*3+ch]
			}
		}
	}
	var observed []int
	out, err := run.Run(context.Background(), nchw, 1, size, size, []int{16, 17}, func(op int, y []float32, n, c, h, w int) {
		observed = append(observed, op)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(observed) != 4 || observed[0] != 0 || observed[3] != 5 {
		t.Errorf("observed convs %v, want [0 1 2 5]", observed)
	}
	var sum float64
	for i := range classes {
		if d := math.Abs(float64(out[0][i] - logits[i])); d > 1e-4*(1+math.Abs(float64(logits[i]))) {
			t.Errorf("logit %d: runner %v, naive %v", i, out[0][i], logits[i])
		}
		sum += float64(out[1][i])
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Errorf("softmax sums to %v", sum)
	}
	// Without an observer the fused path must agree with the observed one.
	out2, err := run.Run(context.Background(), nchw, 1, size, size, []int{16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range classes {
		if d := math.Abs(float64(out2[0][i] - out[0][i])); d > 1e-5 {
			t.Errorf("logit %d: fused %v, observed %v", i, out2[0][i], out[0][i])
		}
	}
}

func TestRunnerErrors(t *testing.T) {
	m := tinyModel(4, 4, 3, 5)
	run, err := NewRunner(m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := run.Run(ctx, make([]float32, 10), 1, 5, 5, nil, nil); err == nil {
		t.Error("wrong input size: no error")
	}
	if _, err := run.Run(ctx, make([]float32, 75), 1, 5, 5, []int{1}, nil); err == nil {
		t.Error("constant tensor requested: no error")
	}
	if _, err := run.Run(ctx, make([]float32, 75), 1, 5, 5, []int{99}, nil); err == nil {
		t.Error("tensor out of range: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := run.Run(cctx, make([]float32, 75), 1, 5, 5, []int{16}, nil); err == nil {
		t.Error("cancelled: no error")
	}
	m.Subgraphs[0].Operators[3].Opcode = OpMul
	if _, err := NewRunner(m); err == nil {
		t.Error("unsupported op: no error")
	}
}
