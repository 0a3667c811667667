package supernet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/natgw/natgw/internal/cpu"
)

// Net is a subnet compiled for fast eval-mode inference on the CPU: BatchNorm folded into
// the convolutions, buffers reused across calls. It is safe for concurrent use.
type Net struct {
	classes   int
	padding   string
	stem      convOp
	blocks    []blockOp
	final     *convOp
	mix       *convOp
	cls       Linear
	pool      *sync.Pool // of *workspace: the Net's own, or calibrationBuffers
	workers   int
	calibrate bool
}

type convOp struct {
	l     *ConvLayer // source layer (its BN when not folded)
	w, b  []float32
	act   cpu.Act
	bn    *BatchNorm // non-nil only when calibrating: normalise with batch statistics
	stats *bnStats
}

type blockOp struct {
	expand   *convOp
	dw       convOp
	se       *SE
	project  convOp
	residual bool
}

// bnStats accumulates OFA's set_running_statistics estimates: per batch the mean and the
// biased variance, averaged with batch-size weights.
type bnStats struct {
	mean, vari []float64
	count      int
}

func toCPU(a Act) cpu.Act {
	switch a {
	case ActReLU:
		return cpu.ActReLU
	case ActReLU6:
		return cpu.ActReLU6
	case ActHSwish:
		return cpu.ActHSwish
	}
	return cpu.ActNone
}

// Compile prepares the subnet for inference with BatchNorm folded into each convolution
// (w·γ/√(σ²+ε), β−μ·γ/√(σ²+ε)). Later changes to the subnet are not seen.
func (n *Subnet) Compile() *Net { return n.compile(false, runtime.GOMAXPROCS(0)) }

// CompileOn is Compile for forward passes on at most workers cores.
func (n *Subnet) CompileOn(workers int) *Net { return n.compile(false, max(1, workers)) }

func (n *Subnet) compile(calibrate bool, workers int) *Net {
	net := &Net{classes: n.Classifier.Out, padding: n.Padding, cls: n.Classifier,
		workers: workers, calibrate: calibrate, pool: new(sync.Pool)}
	if calibrate {
		net.pool = &calibrationBuffers
	}
	op := func(l *ConvLayer) convOp {
		o := convOp{l: l, w: l.Weight, b: l.Bias, act: toCPU(l.Act)}
		if l.BN == nil {
			return o
		}
		if calibrate {
			o.bn = l.BN
			o.stats = &bnStats{mean: make([]float64, l.Out), vari: make([]float64, l.Out)}
			return o
		}
		o.w, o.b = FoldBN(l.Weight, l.Bias, l.BN)
		return o
	}
	net.stem = op(&n.Stem)
	for i := range n.Blocks {
		b := &n.Blocks[i]
		bo := blockOp{dw: op(&b.Depthwise), project: op(&b.Project), se: b.SE, residual: b.Residual}
		if b.Expand != nil {
			e := op(b.Expand)
			bo.expand = &e
		}
		net.blocks = append(net.blocks, bo)
	}
	if n.FinalExpand != nil {
		f := op(n.FinalExpand)
		net.final = &f
	}
	if n.FeatureMix != nil {
		f := op(n.FeatureMix)
		net.mix = &f
	}
	return net
}

// FoldBN returns weights and bias with an eval-mode BatchNorm folded in, in float64
// arithmetic; the forward pass and the exporter share it so both see the same weights.
func FoldBN(w, bias []float32, bn *BatchNorm) ([]float32, []float32) {
	out := len(bn.Weight)
	per := len(w) / out
	fw := make([]float32, len(w))
	fb := make([]float32, out)
	for o := range out {
		scale := float64(bn.Weight[o]) / math.Sqrt(float64(bn.Var[o])+bn.Eps)
		b := 0.0
		if bias != nil {
			b = float64(bias[o])
		}
		fb[o] = float32(float64(bn.Bias[o]) + (b-float64(bn.Mean[o]))*scale)
		for i := range per {
			fw[o*per+i] = float32(float64(w[o*per+i]) * scale)
		}
	}
	return fw, fb
}

// Classes is the number of logits per image.
func (m *Net) Classes() int { return m.classes }

// calibrationBuffers are the activation buffers of recalibrations (hundreds of MB at large
// batches), shared so that one recalibration reuses the last one's instead of faulting in
// fresh memory; ReleaseCalibrationBuffers makes them garbage.
var calibrationBuffers sync.Pool

// ReleaseCalibrationBuffers drops the buffers recalibrations keep for the next one, so
// that the next garbage collection returns them (a server calls it when it has nothing
// more to measure).
func ReleaseCalibrationBuffers() {
	for calibrationBuffers.Get() != nil {
	}
}

// scratchSlot is the workspace buffer for im2col scratch.
const scratchSlot = 4

// workspace holds the ping-pong activation buffers of one forward call.
type workspace struct{ buf [5][]float32 }

func (ws *workspace) get(i, n int) []float32 {
	if cap(ws.buf[i]) < n {
		ws.buf[i] = make([]float32, n)
	}
	return ws.buf[i][:n]
}

// Forward runs a batch x of shape [batch,3,h,w] (NCHW, float32) and returns the logits
// [batch, classes]. Batches are split across the cores.
func (m *Net) Forward(ctx context.Context, x []float32, batch, h, w int) ([]float32, error) {
	if batch < 1 || h < 1 || w < 1 || len(x) != batch*3*h*w {
		return nil, fmt.Errorf("forward: input has %d values, shape [%d,3,%d,%d] needs %d", len(x), batch, h, w, batch*3*h*w)
	}
	out := make([]float32, batch*m.classes)
	workers := min(m.workers, batch)
	if m.calibrate || workers <= 1 {
		// Calibration needs whole-batch statistics; a single image uses the kernels' own parallelism.
		return out, m.forward(ctx, x, batch, h, w, out, m.workers)
	}
	// Split the batch: one goroutine per core, each running whole images, no per-layer sync.
	per := (batch + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		lo, hi := i*per, min((i+1)*per, batch)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			img := 3 * h * w
			errs[i] = m.forward(ctx, x[lo*img:hi*img], hi-lo, h, w, out[lo*m.classes:hi*m.classes], 1)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (m *Net) forward(ctx context.Context, x []float32, n, h, w int, out []float32, workers int) error {
	ws, _ := m.pool.Get().(*workspace)
	if ws == nil {
		ws = &workspace{}
	}
	defer m.pool.Put(ws)
	// Slots 0 and 1 alternate as block input/output, 2 and 3 hold a block's expanded and
	// depthwise activations (and slot 2 the network input before the stem).
	in := ws.get(2, len(x))
	copy(in, x)
	cur, c := 0, 3
	y, c, h, w := m.conv(&m.stem, in, n, c, h, w, ws, cur, workers)
	for i := range m.blocks {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := &m.blocks[i]
		t, tc, th, tw := y, c, h, w
		if b.expand != nil {
			t, tc, th, tw = m.conv(b.expand, t, n, tc, th, tw, ws, 2, workers)
		}
		t, tc, th, tw = m.conv(&b.dw, t, n, tc, th, tw, ws, 3, workers)
		if b.se != nil {
			applySE(b.se, t, n, tc, th*tw)
		}
		next := 1 - cur
		t, tc, th, tw = m.conv(&b.project, t, n, tc, th, tw, ws, next, workers)
		if b.residual {
			cpu.Add(t, y)
		}
		y, c, h, w, cur = t, tc, th, tw, next
	}
	if m.final != nil {
		y, c, h, w = m.conv(m.final, y, n, c, h, w, ws, 1-cur, workers)
	}
	pooled := make([]float32, n*c)
	cpu.GlobalAvgPool(n, c, h*w, y, pooled)
	if m.mix != nil {
		pooled, c = m.dense(m.mix, pooled, n, c)
	}
	fcForward(n, c, m.cls.Out, pooled, m.cls.Weight, m.cls.Bias, out)
	return nil
}

// conv runs one convolution layer into workspace slot dst.
func (m *Net) conv(o *convOp, x []float32, n, c, h, w int, ws *workspace, dst, workers int) ([]float32, int, int, int) {
	l := o.l
	pt, pb := Pads(m.padding, h, l.Kernel, l.Stride)
	pl, pr := Pads(m.padding, w, l.Kernel, l.Stride)
	g := cpu.Conv{N: n, C: c, H: h, W: w, K: l.Out, KH: l.Kernel, KW: l.Kernel,
		StrideH: l.Stride, StrideW: l.Stride, PadTop: pt, PadLeft: pl, PadBottom: pb, PadRight: pr, Groups: l.Groups,
		Workers: workers}
	oh, ow := g.OutH(), g.OutW()
	y := ws.get(dst, n*l.Out*oh*ow)
	act := o.act
	if o.bn != nil {
		act = cpu.ActNone
	}
	cpu.ConvForwardScratch(g, x, o.w, o.b, act, y, ws.get(scratchSlot, g.ScratchSize()))
	if o.bn != nil {
		batchNorm(o, y, n, l.Out, oh*ow, workers)
	}
	return y, l.Out, oh, ow
}

// dense runs a 1×1 conv on a 1×1 map as a matrix product over the batch.
func (m *Net) dense(o *convOp, x []float32, n, c int) ([]float32, int) {
	l := o.l
	y := make([]float32, n*l.Out)
	fcForward(n, c, l.Out, x, o.w, o.b, y)
	if o.bn != nil {
		batchNorm(o, y, n, l.Out, 1, m.workers)
	} else {
		cpu.Apply(o.act, y)
	}
	return y, l.Out
}

// fcForward computes y[n,out] = x[n,in]·wᵀ + b.
func fcForward(n, in, out int, x, w, b, y []float32) {
	if b != nil {
		for i := range n {
			copy(y[i*out:(i+1)*out], b)
		}
	}
	beta := float32(0)
	if b != nil {
		beta = 1
	}
	cpu.Sgemm(false, true, n, out, in, 1, x, in, w, in, beta, y, out)
}

// applySE scales each channel of x [n,c,hw] by its squeeze-and-excitation gate.
func applySE(se *SE, x []float32, n, c, hw int) {
	pooled := make([]float32, n*c)
	cpu.GlobalAvgPool(n, c, hw, x, pooled)
	hid := make([]float32, n*se.Hidden)
	fcForward(n, c, se.Hidden, pooled, se.ReduceWeight, se.ReduceBias, hid)
	cpu.Apply(cpu.ActReLU, hid)
	gate := make([]float32, n*c)
	fcForward(n, se.Hidden, c, hid, se.ExpandWeight, se.ExpandBias, gate)
	cpu.Apply(cpu.ActHSigmoid, gate)
	cpu.ChannelScale(n, c, hw, x, gate)
}

// batchNorm normalises y [n,c,hw] with its own batch statistics (mean and biased variance
// per channel), records them, and applies the affine parameters and the layer's
// activation: BatchNorm as OFA's set_running_statistics runs it.
func batchNorm(o *convOp, y []float32, n, c, hw, workers int) {
	mean := make([]float64, c)
	vari := make([]float64, c)
	channelMoments(y, n, c, hw, mean, vari, workers)
	scale := make([]float32, c)
	shift := make([]float32, c)
	for ch := range c {
		o.stats.mean[ch] += mean[ch] * float64(n)
		o.stats.vari[ch] += vari[ch] * float64(n)
		inv := float64(o.bn.Weight[ch]) / math.Sqrt(vari[ch]+o.bn.Eps)
		scale[ch] = float32(inv)
		shift[ch] = float32(float64(o.bn.Bias[ch]) - mean[ch]*inv)
	}
	o.stats.count += n
	cpu.ChannelAffineAct(n, c, hw, y, scale, shift, o.act)
}

// Batches yields calibration batches: it calls fn for each [batch,3,h,w] tensor.
type Batches func(ctx context.Context, fn func(x []float32, batch, h, w int) error) error

// Recalibrate recomputes every BatchNorm's running statistics of the subnet with OFA's
// set_running_statistics semantics: each batch is normalised with its own mean and biased
// variance, and the new statistics are the batch-size-weighted averages of those.
func (n *Subnet) Recalibrate(ctx context.Context, batches Batches) error {
	return n.RecalibrateOn(ctx, batches, runtime.GOMAXPROCS(0))
}

// RecalibrateOn is Recalibrate on at most workers cores (the result does not depend on
// their number).
func (n *Subnet) RecalibrateOn(ctx context.Context, batches Batches, workers int) error {
	net := n.compile(true, max(1, workers))
	err := batches(ctx, func(x []float32, batch, h, w int) error {
		_, err := net.Forward(ctx, x, batch, h, w)
		return err
	})
	if err != nil {
		return fmt.Errorf("recalibrate: %w", err)
	}
	ops := []*convOp{&net.stem}
	for i := range net.blocks {
		b := &net.blocks[i]
		if b.expand != nil {
			ops = append(ops, b.expand)
		}
		ops = append(ops, &b.dw, &b.project)
	}
	if net.final != nil {
		ops = append(ops, net.final)
	}
	if net.mix != nil {
		ops = append(ops, net.mix)
	}
	for _, o := range ops {
		if o.bn == nil {
			continue
		}
		if o.stats.count == 0 {
			return errors.New("recalibrate: no calibration images")
		}
		for ch := range o.bn.Mean {
			o.bn.Mean[ch] = float32(o.stats.mean[ch] / float64(o.stats.count))
			o.bn.Var[ch] = float32(o.stats.vari[ch] / float64(o.stats.count))
		}
	}
	return nil
}

// ChannelMoments returns the mean and the biased variance of channel ch of y [n,c,hw], in
// float64 (two passes, so the variance does not cancel).
func ChannelMoments(y []float32, n, c, hw, ch int) (mean, variance float64) {
	var s float64
	for i := range n {
		for _, v := range y[(i*c+ch)*hw : (i*c+ch+1)*hw] {
			s += float64(v)
		}
	}
	cnt := float64(n * hw)
	mean = s / cnt
	var ss float64
	for i := range n {
		for _, v := range y[(i*c+ch)*hw : (i*c+ch+1)*hw] {
			d := float64(v) - mean
			ss += d * d
		}
	}
	return mean, ss / cnt
}

// momentLanes is how many channels channelMoments sums side by side.
const momentLanes = 8

// channelMoments is ChannelMoments for every channel, bit for bit: each channel's sums
// run in the same order, but momentLanes channels at a time (independent additions keep
// the FPU busy where one channel's chain of dependent additions would wait on each) and
// spread over workers goroutines.
func channelMoments(y []float32, n, c, hw int, mean, variance []float64, workers int) {
	groups := (c + momentLanes - 1) / momentLanes
	work := func(lo, hi int) {
		rows := make([][]float32, momentLanes)
		for g := lo; g < hi; g++ {
			ch := g * momentLanes
			if ch+momentLanes > c {
				for ; ch < c; ch++ {
					mean[ch], variance[ch] = ChannelMoments(y, n, c, hw, ch)
				}
				continue
			}
			laneMoments(y, n, c, hw, ch, mean, variance, rows)
		}
	}
	workers = max(1, min(workers, groups, n*c*hw/(1<<16)+1))
	if workers == 1 {
		work(0, groups)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(w*groups/workers, (w+1)*groups/workers)
		}()
	}
	wg.Wait()
}

// laneMoments computes channels ch … ch+7 as ChannelMoments does, interleaved; rows is
// scratch for momentLanes row slices.
func laneMoments(y []float32, n, c, hw, ch int, mean, variance []float64, rows [][]float32) {
	var s [momentLanes]float64
	for i := range n {
		for l := range rows {
			rows[l] = y[(i*c+ch+l)*hw : (i*c+ch+l+1)*hw]
		}
		r0, r1, r2, r3, r4, r5, r6, r7 := rows[0], rows[1][:hw], rows[2][:hw], rows[3][:hw], rows[4][:hw], rows[5][:hw], rows[6][:hw], rows[7][:hw]
		s0, s1, s2, s3, s4, s5, s6, s7 := s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
		for j := range r0 {
			s0 += float64(r0[j])
			s1 += float64(r1[j])
			s2 += float64(r2[j])
			s3 += float64(r3[j])
			s4 += float64(r4[j])
			s5 += float64(r5[j])
			s6 += float64(r6[j])
			s7 += float64(r7[j])
		}
		s = [momentLanes]float64{s0, s1, s2, s3, s4, s5, s6, s7}
	}
	cnt := float64(n * hw)
	var m, q [momentLanes]float64
	for l := range m {
		m[l] = s[l] / cnt
	}
	for i := range n {
		for l := range rows {
			rows[l] = y[(i*c+ch+l)*hw : (i*c+ch+l+1)*hw]
		}
		r0, r1, r2, r3, r4, r5, r6, r7 := rows[0], rows[1][:hw], rows[2][:hw], rows[3][:hw], rows[4][:hw], rows[5][:hw], rows[6][:hw], rows[7][:hw]
		q0, q1, q2, q3, q4, q5, q6, q7 := q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]
		for j := range r0 {
			d0 := float64(r0[j]) - m[0]
			d1 := float64(r1[j]) - m[1]
			d2 := float64(r2[j]) - m[2]
			d3 := float64(r3[j]) - m[3]
			d4 := float64(r4[j]) - m[4]
			d5 := float64(r5[j]) - m[5]
			d6 := float64(r6[j]) - m[6]
			d7 := float64(r7[j]) - m[7]
			q0 += d0 * d0
			q1 += d1 * d1
			q2 += d2 * d2
			q3 += d3 * d3
			q4 += d4 * d4
			q5 += d5 * d5
			q6 += d6 * d6
			q7 += d7 * d7
		}
		q = [momentLanes]float64{q0, q1, q2, q3, q4, q5, q6, q7}
	}
	for l := range m {
		mean[ch+l], variance[ch+l] = m[l], q[l]/cnt
	}
}
