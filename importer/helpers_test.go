package importer

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/natgw/natgw/internal/testutil"
	"github.com/natgw/natgw/supernet"
	"github.com/natgw/natgw/tflite"
)

// sharedPath is testutil.Shared: skip without ../shared, fail under NATGW_REQUIRE_SHARED=1.
func sharedPath(t testing.TB, rel string) string { t.Helper(); return testutil.Shared(t, rel) }

// graphBuilder assembles a TFLite graph shaped like TensorFlow's MobileNetV2 export.
type graphBuilder struct {
	m   *tflite.Model
	sg  *tflite.Subgraph
	rng *rand.Rand
}

func (g *graphBuilder) tensor(name string, shape []int, typ tflite.TensorType, data []byte, scale float32, zp int64) int {
	buf := 0
	if data != nil {
		g.m.Buffers = append(g.m.Buffers, data)
		buf = len(g.m.Buffers) - 1
	}
	g.sg.Tensors = append(g.sg.Tensors, tflite.Tensor{Name: name, Shape: shape, Type: typ, Buffer: buf, Data: data,
		Quant: &tflite.Quantization{Scale: []float32{scale}, ZeroPoint: []int64{zp}}})
	return len(g.sg.Tensors) - 1
}

func (g *graphBuilder) act(name string, shape ...int) int {
	if shape == nil {
		shape = []int{1, 1, 1, 1}
	}
	return g.tensor(name, shape, tflite.Uint8, nil, 0.05, 0)
}

// conv adds a conv (or depthwise) with random uint8 weights scaled to keep activations
// near unit size, and returns its output tensor.
func (g *graphBuilder) conv(x int, dw bool, in, out, k, stride int, act tflite.Activation) int {
	fan := in * k * k
	shape := []int{out, k, k, in}
	if dw {
		fan, shape = k*k, []int{1, k, k, out}
	}
	n := out * k * k
	if !dw {
		n *= in
	}
	w := make([]byte, n)
	for i := range w {
		w[i] = byte(g.rng.IntN(256))
	}
	scale := float32(1.5 / (74 * math.Sqrt(float64(fan))))
	wt := g.tensor("w", shape, tflite.Uint8, w, scale, 128)
	bias := make([]byte, 4*out)
	bscale := float32(1e-3)
	for i := range out {
		binary.LittleEndian.PutUint32(bias[4*i:], uint32(int32(g.rng.IntN(401)-200)))
	}
	bt := g.tensor("b", []int{out}, tflite.Int32, bias, bscale, 0)
	y := g.act("y")
	op := tflite.Operator{Opcode: tflite.OpConv2D, Inputs: []int{x, wt, bt}, Outputs: []int{y}, OptionsType: tflite.OptConv2D,
		Options: tflite.Options{Padding: tflite.PaddingSame, StrideW: stride, StrideH: stride, DilationW: 1, DilationH: 1, Activation: act}}
	if dw {
		op.Opcode, op.OptionsType, op.Options.DepthMultiplier = tflite.OpDepthwiseConv2D, tflite.OptDepthwiseConv, 1
	}
	g.sg.Operators = append(g.sg.Operators, op)
	return y
}

// syntheticMobileNetV2 is a random-weight model with the graph structure of TensorFlow's
// quantized MobileNetV2 for the given spec (block kernel k, 1001 logits with background).
func syntheticMobileNetV2(seed uint64, spec *supernet.Spec, k int) *tflite.Model {
	g := &graphBuilder{m: &tflite.Model{Version: 3, Buffers: [][]byte{nil}}, rng: rand.New(rand.NewPCG(seed, 7))}
	g.m.Subgraphs = []tflite.Subgraph{{Name: "main"}}
	g.sg = &g.m.Subgraphs[0]
	x := g.tensor("input", []int{1, 224, 224, 3}, tflite.Uint8, nil, 1.0/128, 128)
	g.sg.Inputs = []int{x}
	r6 := tflite.ActReLU6
	y := g.conv(x, false, 3, spec.Stem.Out, spec.Stem.Kernel, spec.Stem.Stride, r6)
	y = g.conv(y, true, spec.Stem.Out, spec.Stem.Out, spec.First.Kernel, spec.First.Stride, r6)
	y = g.conv(y, false, spec.Stem.Out, spec.First.Out, 1, 1, tflite.ActNone)
	for b := range spec.NumBlocks() {
		st, pos := spec.BlockStage(b)
		in, out := spec.BlockIn(b), spec.Stages[st].Width
		mid := spec.MidWidth(in, spec.Expands[len(spec.Expands)-1])
		stride := 1
		if pos == 0 {
			stride = spec.Stages[st].Stride
		}
		blockIn := y
		y = g.conv(y, false, in, mid, 1, 1, r6)
		y = g.conv(y, true, mid, mid, k, stride, r6)
		y = g.conv(y, false, mid, out, 1, 1, tflite.ActNone)
		if stride == 1 && in == out {
			sum := g.act("add")
			g.sg.Operators = append(g.sg.Operators, tflite.Operator{Opcode: tflite.OpAdd, Inputs: []int{y, blockIn},
				Outputs: []int{sum}, OptionsType: tflite.OptAdd})
			y = sum
		}
	}
	y = g.conv(y, false, spec.FeatureWidth(), spec.FinalExpand.Out, 1, 1, r6)
	g.sg.Tensors[y].Shape = []int{1, 7, 7, spec.FinalExpand.Out} // the pool's declared 224-px input
	pool := g.act("pool")
	g.sg.Operators = append(g.sg.Operators, tflite.Operator{Opcode: tflite.OpAveragePool2D, Inputs: []int{y}, Outputs: []int{pool},
		OptionsType: tflite.OptPool2D, Options: tflite.Options{Padding: tflite.PaddingValid, StrideW: 1, StrideH: 1, FilterW: 7, FilterH: 7}})
	logits := g.conv(pool, false, spec.FinalExpand.Out, 1001, 1, 1, tflite.ActNone)
	flat := g.act("squeeze")
	g.sg.Operators = append(g.sg.Operators, tflite.Operator{Opcode: tflite.OpReshape, Inputs: []int{logits}, Outputs: []int{flat}})
	prob := g.act("prob")
	g.sg.Operators = append(g.sg.Operators, tflite.Operator{Opcode: tflite.OpSoftmax, Inputs: []int{flat}, Outputs: []int{prob},
		OptionsType: tflite.OptSoftmax, Options: tflite.Options{Beta: 1}})
	g.sg.Outputs = []int{prob}
	return g.m
}

// randomBatches yields fixed random images in [-1, 1].
func randomBatches(seed uint64, n, batch, res int) (supernet.Batches, []float32) {
	r := rand.New(rand.NewPCG(seed, 9))
	x := make([]float32, n*3*res*res)
	for i := range x {
		x[i] = float32(r.Float64()*2 - 1)
	}
	return func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error {
		per := 3 * res * res
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			if err := fn(x[lo*per:hi*per], hi-lo, res, res); err != nil {
				return err
			}
		}
		return nil
	}, x
}
