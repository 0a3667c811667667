package cpu

/*
#cgo CFLAGS: -O3 -march=x86-64-v3 -std=gnu11
#cgo LDFLAGS: -lopenblas
#cgo noescape cblas_sgemm
#cgo nocallback cblas_sgemm
#cgo nocallback openblas_set_num_threads
#cgo nocallback openblas_get_config
#cgo nocallback openblas_get_corename
#include <cblas.h>
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"
)

// blasOnce pins OpenBLAS to one thread: parallelism comes from this package's goroutines.
var blasOnce sync.Once

func blasInit() { blasOnce.Do(func() { C.openblas_set_num_threads(1) }) }

// BLAS names the BLAS build and the sgemm kernel it chose for this CPU, e.g.
// "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64, core Haswell". Trained
// weights depend on it: OpenBLAS picks its kernels per CPU at run time (OPENBLAS_CORETYPE
// overrides the choice), two kernels round differently, and a training run, chaotic in its
// rounding, diverges from the same run on the other kernel. Files that training writes record
// it, so that a run can be repeated bit for bit.
func BLAS() string {
	return fmt.Sprintf("%s, core %s", strings.TrimSpace(C.GoString(C.openblas_get_config())), C.GoString(C.openblas_get_corename()))
}

func fptr(s []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

// Sgemm computes, row-major, C[m×n] = alpha*op(A)*op(B) + beta*C, with op(X) = Xᵀ when trans is set.
// lda, ldb, ldc are the row strides of the stored matrices. It panics when a slice is too short.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("cpu.Sgemm: negative size m=%d n=%d k=%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMat("A", a, ar, ac, lda)
	checkMat("B", b, br, bc, ldb)
	checkMat("C", c, m, n, ldc)
	sgemm(transA, transB, m, n, k, alpha, fptr(a), lda, fptr(b), ldb, beta, fptr(c), ldc)
}

func checkMat(name string, s []float32, rows, cols, ld int) {
	if ld < max(cols, 1) {
		panic(fmt.Sprintf("cpu.Sgemm: ld%s=%d < %d columns", name, ld, cols))
	}
	if rows > 0 && cols > 0 && len(s) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("cpu.Sgemm: %s has %d elements, needs %d (%dx%d, ld %d)", name, len(s), (rows-1)*ld+cols, rows, cols, ld))
	}
}

// sgemm is the unchecked call used internally; k == 0 scales C by beta like BLAS does.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a *C.float, lda int, b *C.float, ldb int, beta float32, c *C.float, ldc int) {
	blasInit()
	ta, tb := uint32(C.CblasNoTrans), uint32(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	C.cblas_sgemm(C.CblasRowMajor, C.enum_CBLAS_TRANSPOSE(ta), C.enum_CBLAS_TRANSPOSE(tb), C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), a, C.blasint(lda), b, C.blasint(ldb), C.float(beta), c, C.blasint(ldc))
}
