package trainer

/*
#cgo CFLAGS: -O3 -march=x86-64-v3 -std=gnu11
#cgo noescape t_bn_stats
#cgo nocallback t_bn_stats
#cgo noescape t_bn_apply
#cgo nocallback t_bn_apply
#cgo noescape t_bn_grad_param
#cgo nocallback t_bn_grad_param
#cgo noescape t_bn_grad_data
#cgo nocallback t_bn_grad_data
#cgo noescape t_dilate
#cgo nocallback t_dilate
#include "kernels.h"
*/
import "C"

import (
	"unsafe"

	"github.com/natgw/natgw/internal/cpu"
)

func fp(s []float32) *C.float  { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }
func dp(s []float64) *C.double { return (*C.double)(unsafe.Pointer(unsafe.SliceData(s))) }

// forChannelRanges splits [0,c) over the cores like forChannels, one call per worker.
func forChannelRanges(c, total int, fn func(c0, c1 int)) {
	w := workers(c, total)
	if w <= 1 {
		fn(0, c)
		return
	}
	runRanges(c, w, fn)
}

func bnStats(x []float32, n, c, hw int, mean, vari []float64) {
	forChannelRanges(c, n*c*hw, func(c0, c1 int) {
		C.t_bn_stats(fp(x), C.int(n), C.int(c), C.long(hw), C.int(c0), C.int(c1), dp(mean), dp(vari))
	})
}

func bnApply(x, y []float32, n, c, hw int, scale, shift []float32, act cpu.Act) {
	forChannelRanges(c, n*c*hw, func(c0, c1 int) {
		C.t_bn_apply(fp(x), fp(y), C.int(n), C.int(c), C.long(hw), C.int(c0), C.int(c1), fp(scale), fp(shift), C.int(act))
	})
}

func bnGradParam(x, dy, dz []float32, n, c, hw int, mean, invstd, gamma, beta []float32, act cpu.Act, sg, sb []float64) {
	forChannelRanges(c, n*c*hw, func(c0, c1 int) {
		C.t_bn_grad_param(fp(x), fp(dy), fp(dz), C.int(n), C.int(c), C.long(hw), C.int(c0), C.int(c1),
			fp(mean), fp(invstd), fp(gamma), fp(beta), C.int(act), dp(sg), dp(sb))
	})
}

func bnGradData(x, dz, dx []float32, n, c, hw int, mean, invstd, k, mg, mb []float32) {
	forChannelRanges(c, n*c*hw, func(c0, c1 int) {
		C.t_bn_grad_data(fp(x), fp(dz), fp(dx), C.int(n), C.int(c), C.long(hw), C.int(c0), C.int(c1),
			fp(mean), fp(invstd), fp(k), fp(mg), fp(mb))
	})
}

func dilate(dy, out []float32, planes, oh, ow, sh, sw, lh, lw int) {
	forChannelRanges(planes, planes*lh*lw, func(p0, p1 int) {
		C.t_dilate(fp(dy), fp(out), C.long(p0), C.long(p1), C.int(oh), C.int(ow), C.int(sh), C.int(sw), C.int(lh), C.int(lw))
	})
}
