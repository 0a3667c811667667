// Package cpu holds the float32 numeric kernels that run extracted subnets on the CPU: GEMM
// (OpenBLAS, single-threaded), convolutions (1x1 straight to GEMM, other dense convs via
// im2col+GEMM, depthwise via direct AVX2/FMA kernels), their backward passes for training, and
// the elementwise helpers used by batch norm, squeeze-excite, pooling and residuals.
//
// Layout is NCHW, row-major, float32 everywhere. Outputs are caller-allocated slices. Work is
// split over up to Workers() goroutines (batch images, pixel blocks, channels); problems below a
// small work threshold run on the calling goroutine only. OpenBLAS is pinned to one thread on
// first use so that it does not fight these goroutines for the cores.
//
// Shape errors are programming errors: the functions panic with a descriptive message when
// slices are too short or a Conv fails Check.
package cpu
