// Float32 BatchNorm+activation kernels for training (NCHW). Each call handles the
// channels [c0,c1) of a tensor of n images with c channels of hw pixels.
#ifndef NATGW_TRAINER_KERNELS_H
#define NATGW_TRAINER_KERNELS_H
enum { TACT_NONE = 0, TACT_RELU = 1, TACT_RELU6 = 2, TACT_HSWISH = 3, TACT_HSIGMOID = 4 };
// Batch mean and biased variance per channel (two passes, double accumulation).
void t_bn_stats(const float *x, int n, int c, long hw, int c0, int c1, double *mean, double *var);
// y = act(x*scale[c] + shift[c]).
void t_bn_apply(const float *x, float *y, int n, int c, long hw, int c0, int c1, const float *scale, const float *shift, int act);
// dz = dy*act'(gamma*xhat+beta) with xhat = (x-mean)*invstd; sums of dz and dz*xhat per channel.
void t_bn_grad_param(const float *x, const float *dy, float *dz, int n, int c, long hw, int c0, int c1,
	const float *mean, const float *invstd, const float *gamma, const float *beta, int act, double *sg, double *sb);
// dx = k[c]*(dz - mb[c] - xhat*mg[c]).
void t_bn_grad_data(const float *x, const float *dz, float *dx, int n, int c, long hw, int c0, int c1,
	const float *mean, const float *invstd, const float *k, const float *mg, const float *mb);
// Zero-dilate each of the planes [p0,p1) of dy (oh×ow) by stride (sh,sw) into out (lh×lw).
void t_dilate(const float *dy, float *out, long p0, long p1, int oh, int ow, int sh, int sw, int lh, int lw);
#endif
