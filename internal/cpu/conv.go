package cpu

/*
#cgo noescape k_bias_act
#cgo nocallback k_bias_act
#cgo noescape k_im2col
#cgo nocallback k_im2col
#cgo noescape k_col2im
#cgo nocallback k_col2im
#cgo noescape k_pointwise
#cgo nocallback k_pointwise
#cgo noescape k_dw_forward
#cgo nocallback k_dw_forward
#cgo noescape k_dw_backward_data
#cgo nocallback k_dw_backward_data
#cgo noescape k_dw_backward_filter
#cgo nocallback k_dw_backward_filter
#include "kernels.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Conv is the geometry of a 2-D convolution in NCHW layout. Pads may be asymmetric
// (TensorFlow SAME pads bottom/right more). Groups 0 is taken as 1.
type Conv struct {
	N, C, H, W                           int // input
	K                                    int // output channels
	KH, KW                               int
	StrideH, StrideW                     int
	PadTop, PadLeft, PadBottom, PadRight int
	Groups                               int // 1 = dense, C = depthwise (with K == C), or any divisor of C and K
	// Workers caps the goroutines this call may use; 0 means Workers(). Callers that already
	// run one conv per core (e.g. whole images in parallel) set 1.
	Workers int
}

func (c Conv) workersFor(work float64, perWorker float64, tasks int) int {
	limit := c.Workers
	if limit <= 0 {
		limit = Workers()
	}
	return workersCapped(limit, work, perWorker, tasks)
}

func (c Conv) groups() int {
	if c.Groups == 0 {
		return 1
	}
	return c.Groups
}

// OutH is the output height, floor((H+PadTop+PadBottom-KH)/StrideH)+1.
func (c Conv) OutH() int { return outDim(c.H, c.KH, c.StrideH, c.PadTop, c.PadBottom) }

// OutW is the output width, floor((W+PadLeft+PadRight-KW)/StrideW)+1.
func (c Conv) OutW() int { return outDim(c.W, c.KW, c.StrideW, c.PadLeft, c.PadRight) }

func outDim(in, k, s, p0, p1 int) int {
	if s <= 0 || in+p0+p1 < k {
		return 0
	}
	return (in+p0+p1-k)/s + 1
}

// Check reports whether the geometry is valid.
func (c Conv) Check() error {
	switch {
	case c.N < 1 || c.C < 1 || c.H < 1 || c.W < 1 || c.K < 1:
		return fmt.Errorf("conv: sizes must be positive: N=%d C=%d H=%d W=%d K=%d", c.N, c.C, c.H, c.W, c.K)
	case c.KH < 1 || c.KW < 1:
		return fmt.Errorf("conv: kernel %dx%d must be positive", c.KH, c.KW)
	case c.StrideH < 1 || c.StrideW < 1:
		return fmt.Errorf("conv: strides %dx%d must be positive", c.StrideH, c.StrideW)
	case c.PadTop < 0 || c.PadLeft < 0 || c.PadBottom < 0 || c.PadRight < 0:
		return fmt.Errorf("conv: negative padding %d,%d,%d,%d", c.PadTop, c.PadLeft, c.PadBottom, c.PadRight)
	case c.Groups < 0:
		return fmt.Errorf("conv: negative groups %d", c.Groups)
	case c.C%c.groups() != 0 || c.K%c.groups() != 0:
		return fmt.Errorf("conv: groups %d must divide C=%d and K=%d", c.groups(), c.C, c.K)
	case c.OutH() < 1 || c.OutW() < 1:
		return errors.New("conv: kernel larger than padded input")
	}
	return nil
}

func (c Conv) depthwise() bool { return c.groups() == c.C && c.K == c.C && c.C > 1 }

func (c Conv) pointwise() bool {
	return c.KH == 1 && c.KW == 1 && c.StrideH == 1 && c.StrideW == 1 &&
		c.PadTop == 0 && c.PadLeft == 0 && c.PadBottom == 0 && c.PadRight == 0
}

// Flops is the multiply-add count times two of the forward pass (also of each backward pass).
func (c Conv) Flops() float64 {
	return 2 * float64(c.N) * float64(c.K) * float64(c.OutH()*c.OutW()) * float64(c.C/c.groups()*c.KH*c.KW)
}

func (c Conv) geom() C.conv_geom {
	return C.conv_geom{
		C: C.int(c.C), H: C.int(c.H), W: C.int(c.W), K: C.int(c.K), KH: C.int(c.KH), KW: C.int(c.KW),
		SH: C.int(c.StrideH), SW: C.int(c.StrideW), PT: C.int(c.PadTop), PL: C.int(c.PadLeft),
		PB: C.int(c.PadBottom), PR: C.int(c.PadRight), OH: C.int(c.OutH()), OW: C.int(c.OutW()),
	}
}

func (c Conv) mustCheck(op string, x, w, y []float32, xn, yn string) {
	if err := c.Check(); err != nil {
		panic(fmt.Sprintf("cpu.%s: %v", op, err))
	}
	need(op, xn, x, c.N*c.C*c.H*c.W)
	need(op, "w", w, c.K*(c.C/c.groups())*c.KH*c.KW)
	need(op, yn, y, c.N*c.K*c.OutH()*c.OutW())
}

// colBudget bounds one worker's im2col block (floats): about 512 KiB, so the block stays in L2.
const colBudget = 1 << 17

// plan splits a dense conv's output pixels into blocks: tasks are (image, group, block).
type plan struct {
	g, cg, kg, kk, ckk, ohw int
	blk, nb                 int // pixel block length and blocks per image-group
	workers                 int
	direct                  bool // 1x1 stride 1 unpadded: GEMM reads x directly
}

func (c Conv) plan() plan {
	p := plan{g: c.groups(), kk: c.KH * c.KW, ohw: c.OutH() * c.OutW(), direct: c.pointwise()}
	p.cg, p.kg = c.C/p.g, c.K/p.g
	p.ckk = p.cg * p.kk
	maxBlk := p.ohw
	if !p.direct {
		maxBlk = min(p.ohw, max(64, colBudget/p.ckk/16*16))
	}
	nb := (p.ohw + maxBlk - 1) / maxBlk
	ig := c.N * p.g
	p.workers = c.workersFor(c.Flops(), minFlopsPerWorker, ig*max(1, p.ohw/16))
	if ig*nb < p.workers {
		nb = (p.workers + ig - 1) / ig // split images so that every worker gets a share
	}
	p.blk = (p.ohw + nb - 1) / nb
	if p.blk < p.ohw {
		p.blk = min(p.ohw, (p.blk+15)/16*16)
	}
	p.nb = (p.ohw + p.blk - 1) / p.blk
	p.workers = min(p.workers, ig*p.nb)
	return p
}

func (p plan) colSize() int {
	if p.direct {
		return 0
	}
	return p.ckk * p.blk
}

// ScratchSize is the number of float32s of scratch ConvForwardScratch uses with the current
// Workers() setting (0 for pointwise and depthwise convs, which need none).
func (c Conv) ScratchSize() int {
	if c.Check() != nil || c.depthwise() {
		return 0
	}
	p := c.plan()
	return p.colSize() * p.workers
}

// ConvForward computes y = act(conv(x, w) + bias). w is [K, C/Groups, KH, KW], bias (K) may be
// nil, y is [N, K, OutH, OutW]. im2col convs allocate their scratch; use ConvForwardScratch to avoid that.
func ConvForward(c Conv, x, w, bias []float32, act Act, y []float32) {
	ConvForwardScratch(c, x, w, bias, act, y, nil)
}

// ConvForwardScratch is ConvForward with caller scratch (ScratchSize floats); a shorter
// scratch means fewer goroutines, or an allocation when it cannot hold one worker's block.
func ConvForwardScratch(c Conv, x, w, bias []float32, act Act, y []float32, scratch []float32) {
	c.mustCheck("ConvForward", x, w, y, "x", "y")
	act.check()
	if bias != nil {
		need("ConvForward", "bias", bias, c.K)
	}
	var pb *C.float
	if bias != nil {
		pb = fptr(bias)
	}
	if c.depthwise() {
		g := c.geom()
		planes := c.N * c.C
		nw := c.workersFor(c.Flops(), minFlopsPerWorker, planes)
		parallel(planes, nw, func(_, lo, hi int) {
			if C.k_dw_forward(&g, fptr(x), fptr(w), pb, fptr(y), C.long(lo), C.long(hi), C.int(act)) != 0 {
				panic("cpu.ConvForward: out of memory")
			}
		})
		return
	}
	p := c.plan()
	cs := p.colSize()
	nw := p.workers
	if cs > 0 {
		if len(scratch)/cs < nw {
			nw = len(scratch) / cs
		}
		if nw == 0 {
			nw = p.workers
			scratch = make([]float32, cs*nw)
		}
	}
	g := c.geom()
	hw, ohw := c.H*c.W, p.ohw
	tasks := c.N * p.g * p.nb
	parallel(tasks, nw, func(wk, lo, hi int) {
		var col []float32
		if cs > 0 {
			col = scratch[wk*cs : (wk+1)*cs]
		}
		for t := lo; t < hi; t++ {
			b := t % p.nb
			gi := t / p.nb % p.g
			n := t / p.nb / p.g
			p0 := b * p.blk
			p1 := min(ohw, p0+p.blk)
			xs := x[(n*c.C+gi*p.cg)*hw:]
			ys := y[(n*c.K+gi*p.kg)*ohw+p0:]
			ws := w[gi*p.kg*p.ckk:]
			var bp *C.float
			if pb != nil {
				bp = fptr(bias[gi*p.kg:])
			}
			if p.direct && pointwiseDirect(ohw) {
				// Bias and activation are fused in the kernel.
				C.k_pointwise(fptr(xs), C.long(hw), fptr(ws), C.int(p.cg), bp, fptr(y[(n*c.K+gi*p.kg)*ohw:]), C.long(ohw),
					0, C.int(p.kg), C.long(p0), C.long(p1), C.int(act))
				continue
			}
			if p.direct {
				sgemm(false, false, p.kg, p1-p0, p.cg, 1, fptr(ws), p.ckk, fptr(xs[p0:]), hw, 0, fptr(ys), ohw)
			} else {
				C.k_im2col(&g, fptr(x[n*c.C*hw:]), C.int(gi*p.cg), C.int((gi+1)*p.cg), C.long(p0), C.long(p1), fptr(col), C.long(p1-p0))
				sgemm(false, false, p.kg, p1-p0, p.ckk, 1, fptr(ws), p.ckk, fptr(col), p1-p0, 0, fptr(ys), ohw)
			}
			C.k_bias_act(fptr(ys), C.int(p.kg), C.int(p1-p0), C.int(ohw), bp, C.int(act))
		}
	})
}

// ConvBackwardData overwrites dx [N,C,H,W] with the gradient of the convolution w.r.t. its input,
// given dy [N,K,OutH,OutW] (already through the activation's derivative).
func ConvBackwardData(c Conv, dy, w, dx []float32) {
	c.mustCheck("ConvBackwardData", dx, w, dy, "dx", "dy")
	if c.depthwise() {
		g := c.geom()
		planes := c.N * c.C
		nw := c.workersFor(c.Flops(), minFlopsPerWorker, planes)
		parallel(planes, nw, func(_, lo, hi int) {
			if C.k_dw_backward_data(&g, fptr(dy), fptr(w), fptr(dx), C.long(lo), C.long(hi)) != 0 {
				panic("cpu.ConvBackwardData: out of memory")
			}
		})
		return
	}
	gr := c.groups()
	cg, kg, kk := c.C/gr, c.K/gr, c.KH*c.KW
	ckk, hw, ohw := cg*kk, c.H*c.W, c.OutH()*c.OutW()
	direct := c.pointwise()
	// Tasks are (image, group, channel block): a channel block's dcol rows scatter only into
	// its own channels, so tasks never write the same dx element.
	cb := cg
	if !direct {
		cb = max(1, min(cg, 2*colBudget/(kk*ohw)))
	}
	nw := c.workersFor(c.Flops(), minFlopsPerWorker, c.N*gr*cg)
	nb := (cg + cb - 1) / cb
	if c.N*gr*nb < nw {
		nb = min(cg, (nw+c.N*gr-1)/(c.N*gr))
		cb = (cg + nb - 1) / nb
		nb = (cg + cb - 1) / cb
	}
	tasks := c.N * gr * nb
	nw = min(nw, tasks)
	var scratch []float32
	cs := 0
	if !direct {
		cs = cb * kk * ohw
		scratch = make([]float32, cs*nw)
	}
	g := c.geom()
	parallel(tasks, nw, func(wk, lo, hi int) {
		for t := lo; t < hi; t++ {
			b := t % nb
			gi := t / nb % gr
			n := t / nb / gr
			c0 := b * cb
			c1 := min(cg, c0+cb)
			ws := w[gi*kg*ckk+c0*kk:]
			dys := dy[(n*c.K+gi*kg)*ohw:]
			if direct {
				sgemm(true, false, c1-c0, ohw, kg, 1, fptr(ws), ckk, fptr(dys), ohw, 0, fptr(dx[(n*c.C+gi*cg+c0)*hw:]), hw)
				continue
			}
			col := scratch[wk*cs : (wk+1)*cs]
			sgemm(true, false, (c1-c0)*kk, ohw, kg, 1, fptr(ws), ckk, fptr(dys), ohw, 0, fptr(col), ohw)
			dxs := dx[n*c.C*hw:]
			clear(dxs[(gi*cg+c0)*hw : (gi*cg+c1)*hw])
			C.k_col2im(&g, fptr(col), C.int(gi*cg+c0), C.int(gi*cg+c1), fptr(dxs))
		}
	})
}

// ConvBackwardFilter overwrites dw [K, C/Groups, KH, KW] with the gradient of the convolution
// w.r.t. its weights, summed over the batch, given x and dy (already through the activation's derivative).
func ConvBackwardFilter(c Conv, x, dy, dw []float32) {
	c.mustCheck("ConvBackwardFilter", x, dw, dy, "x", "dy")
	if c.depthwise() {
		g := c.geom()
		nw := c.workersFor(c.Flops(), minFlopsPerWorker, c.C)
		parallel(c.C, nw, func(_, lo, hi int) {
			if C.k_dw_backward_filter(&g, C.int(c.N), fptr(x), fptr(dy), fptr(dw), C.int(lo), C.int(hi)) != 0 {
				panic("cpu.ConvBackwardFilter: out of memory")
			}
		})
		return
	}
	p := c.plan()
	nw := p.workers
	cs := p.colSize()
	wsz := c.K * p.ckk
	// Worker 0 accumulates straight into dw, the others into private buffers summed at the end.
	acc := make([]float32, (nw-1)*wsz+cs*nw)
	clear(dw[:wsz])
	g := c.geom()
	hw, ohw := c.H*c.W, p.ohw
	tasks := c.N * p.g * p.nb
	parallel(tasks, nw, func(wk, lo, hi int) {
		mine := dw
		if wk > 0 {
			mine = acc[(wk-1)*wsz : wk*wsz]
		}
		col := acc[(nw-1)*wsz+wk*cs:]
		for t := lo; t < hi; t++ {
			b := t % p.nb
			gi := t / p.nb % p.g
			n := t / p.nb / p.g
			p0 := b * p.blk
			p1 := min(ohw, p0+p.blk)
			dys := dy[(n*c.K+gi*p.kg)*ohw+p0:]
			dws := mine[gi*p.kg*p.ckk:]
			if p.direct {
				sgemm(false, true, p.kg, p.ckk, p1-p0, 1, fptr(dys), ohw, fptr(x[(n*c.C+gi*p.cg)*hw+p0:]), hw, 1, fptr(dws), p.ckk)
				continue
			}
			C.k_im2col(&g, fptr(x[n*c.C*hw:]), C.int(gi*p.cg), C.int((gi+1)*p.cg), C.long(p0), C.long(p1), fptr(col), C.long(p1-p0))
			sgemm(false, true, p.kg, p.ckk, p1-p0, 1, fptr(dys), ohw, fptr(col), p1-p0, 1, fptr(dws), p.ckk)
		}
	})
	for wk := 1; wk < nw; wk++ {
		Add(dw[:wsz], acc[(wk-1)*wsz:wk*wsz])
	}
}

// pointwiseDirect picks the direct kernel over OpenBLAS for a pointwise conv with ohw
// output pixels per image: on the small maps of a network's tail (≤ 16 pixels) GEMM packing
// dominates and the direct kernel was 2–3× faster; on larger maps OpenBLAS was as fast or faster.
func pointwiseDirect(ohw int) bool { return ohw <= 16 }
