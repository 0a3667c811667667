// Direct float32 kernels for package cpu (NCHW, row-major). Called from Go via cgo;
// every function loops over a whole range of planes so one cgo call does a worker's share.
#ifndef NATGW_CPU_KERNELS_H
#define NATGW_CPU_KERNELS_H

enum { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU6 = 2, ACT_HSWISH = 3, ACT_HSIGMOID = 4 };

typedef struct {
	int C, H, W, K, KH, KW, SH, SW, PT, PL, PB, PR, OH, OW;
} conv_geom;

// Elementwise.
void k_act(int act, float *x, long n);
void k_bias_act(float *y, int rows, int cols, int ld, const float *bias, int act);
void k_gap(const float *x, float *y, long planes, long hw);
void k_channel_affine_act(float *x, long p0, long p1, int c, long hw, const float *scale, const float *shift, int act);
void k_channel_scale(float *x, long p0, long p1, long hw, const float *s);
void k_add(float *dst, const float *src, long n);

// im2col of image x (C×H×W) for channels [c0,c1) and output pixels [p0,p1) into col,
// rows (c,kh,kw) with leading dimension ldc.
void k_im2col(const conv_geom *g, const float *x, int c0, int c1, long p0, long p1, float *col, long ldc);
// col2im accumulate: dx[c] += scatter of col rows for channels [c0,c1), all output pixels.
void k_col2im(const conv_geom *g, const float *col, int c0, int c1, float *dx);

// Depthwise (K == C == groups) over planes [p0,p1) of the N*C planes.
// Return 0 on success, -1 if scratch allocation failed.
int k_dw_forward(const conv_geom *g, const float *x, const float *w, const float *bias, float *y, long p0, long p1, int act);
int k_dw_backward_data(const conv_geom *g, const float *dy, const float *w, float *dx, long p0, long p1);
// dw for channels [c0,c1), summed over the n images.
int k_dw_backward_filter(const conv_geom *g, int n, const float *x, const float *dy, float *dw, int c0, int c1);

// Pointwise conv of one image: y[k][p] = act(Σ_c w[k*C+c]·x[c*ldx+p] + bias[k]) for rows
// [k0,k1) and pixels [p0,p1); bias may be NULL.
void k_pointwise(const float *x, long ldx, const float *w, int C, const float *bias, float *y, long ldy,
		int k0, int k1, long p0, long p1, int act);

#endif
