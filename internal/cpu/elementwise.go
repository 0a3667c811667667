package cpu

/*
#cgo noescape k_gap
#cgo nocallback k_gap
#cgo noescape k_channel_affine_act
#cgo nocallback k_channel_affine_act
#cgo noescape k_channel_scale
#cgo nocallback k_channel_scale
#cgo noescape k_add
#cgo nocallback k_add
#include "kernels.h"
*/
import "C"

import "fmt"

func need(op, name string, s []float32, n int) {
	if len(s) < n {
		panic(fmt.Sprintf("cpu.%s: %s has %d elements, needs %d", op, name, len(s), n))
	}
}

// GlobalAvgPool writes y[i] = mean of x[i*hw:(i+1)*hw] for the n*c planes.
func GlobalAvgPool(n, c, hw int, x, y []float32) {
	planes := n * c
	if planes == 0 || hw == 0 {
		return
	}
	need("GlobalAvgPool", "x", x, planes*hw)
	need("GlobalAvgPool", "y", y, planes)
	w := workersFor(float64(planes*hw), minElemsPerWorker, planes)
	parallel(planes, w, func(_, lo, hi int) {
		C.k_gap(fptr(x[lo*hw:]), fptr(y[lo:]), C.long(hi-lo), C.long(hw))
	})
}

// ChannelAffine sets x = x*scale[c] + shift[c] in place (inference batch norm), one fused
// multiply-add per element.
func ChannelAffine(n, c, hw int, x []float32, scale, shift []float32) {
	ChannelAffineAct(n, c, hw, x, scale, shift, ActNone)
}

// ChannelAffineAct is ChannelAffine then Apply(act) in one pass, bit for bit the same.
func ChannelAffineAct(n, c, hw int, x []float32, scale, shift []float32, act Act) {
	act.check()
	planes := n * c
	if planes == 0 || hw == 0 {
		return
	}
	need("ChannelAffineAct", "x", x, planes*hw)
	need("ChannelAffineAct", "scale", scale, c)
	need("ChannelAffineAct", "shift", shift, c)
	w := workersFor(float64(planes*hw), minElemsPerWorker, planes)
	parallel(planes, w, func(_, lo, hi int) {
		C.k_channel_affine_act(fptr(x), C.long(lo), C.long(hi), C.int(c), C.long(hw), fptr(scale), fptr(shift), C.int(act))
	})
}

// ChannelScale multiplies plane x[n,c,:] by s[n*c] in place (squeeze-excite).
func ChannelScale(n, c, hw int, x []float32, s []float32) {
	planes := n * c
	if planes == 0 || hw == 0 {
		return
	}
	need("ChannelScale", "x", x, planes*hw)
	need("ChannelScale", "s", s, planes)
	w := workersFor(float64(planes*hw), minElemsPerWorker, planes)
	parallel(planes, w, func(_, lo, hi int) {
		C.k_channel_scale(fptr(x), C.long(lo), C.long(hi), C.long(hw), fptr(s))
	})
}

// Add sets dst += src elementwise (residual connections); src must be at least as long as dst.
func Add(dst, src []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	need("Add", "src", src, n)
	w := workersFor(float64(n), minElemsPerWorker, n)
	parallel(n, w, func(_, lo, hi int) {
		C.k_add(fptr(dst[lo:hi]), fptr(src[lo:hi]), C.long(hi-lo))
	})
}
