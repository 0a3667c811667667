#include "kernels.h"
#include <immintrin.h>
#include <string.h>

static inline float act_f(int act, float z) {
	switch (act) {
	case TACT_RELU: return z > 0 ? z : 0;
	case TACT_RELU6: return z < 0 ? 0 : (z > 6 ? 6 : z);
	case TACT_HSWISH: { float t = z + 3; t = t < 0 ? 0 : (t > 6 ? 6 : t); return z * t / 6; }
	case TACT_HSIGMOID: { float t = z + 3; t = t < 0 ? 0 : (t > 6 ? 6 : t); return t / 6; }
	}
	return z;
}

static inline double sum_pd(__m256d v) {
	__m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
	lo = _mm_add_pd(lo, hi);
	return _mm_cvtsd_f64(lo) + _mm_cvtsd_f64(_mm_unpackhi_pd(lo, lo));
}

void t_bn_stats(const float *x, int n, int c, long hw, int c0, int c1, double *mean, double *var) {
	const double cnt = (double)n * (double)hw;
	for (int ch = c0; ch < c1; ch++) {
		__m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
		double s = 0;
		for (int i = 0; i < n; i++) {
			const float *p = x + ((long)i * c + ch) * hw;
			long j = 0;
			for (; j + 8 <= hw; j += 8) {
				__m256 v = _mm256_loadu_ps(p + j);
				s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
				s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
			}
			for (; j < hw; j++) s += p[j];
		}
		const double m = (s + sum_pd(_mm256_add_pd(s0, s1))) / cnt;
		const __m256d mv = _mm256_set1_pd(m);
		s0 = _mm256_setzero_pd(); s1 = _mm256_setzero_pd();
		double ss = 0;
		for (int i = 0; i < n; i++) {
			const float *p = x + ((long)i * c + ch) * hw;
			long j = 0;
			for (; j + 8 <= hw; j += 8) {
				__m256 v = _mm256_loadu_ps(p + j);
				__m256d a = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), mv);
				__m256d b = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), mv);
				s0 = _mm256_fmadd_pd(a, a, s0);
				s1 = _mm256_fmadd_pd(b, b, s1);
			}
			for (; j < hw; j++) { double d = p[j] - m; ss += d * d; }
		}
		mean[ch] = m;
		var[ch] = (ss + sum_pd(_mm256_add_pd(s0, s1))) / cnt;
	}
}

#define APPLY_LOOP(EXPR) \
	for (int ch = c0; ch < c1; ch++) { \
		const float a = scale[ch], b = shift[ch]; \
		for (int i = 0; i < n; i++) { \
			const long off = ((long)i * c + ch) * hw; \
			const float *p = x + off; float *q = y + off; \
			for (long j = 0; j < hw; j++) { float z = p[j] * a + b; q[j] = EXPR; } \
		} \
	}

void t_bn_apply(const float *x, float *y, int n, int c, long hw, int c0, int c1, const float *scale, const float *shift, int act) {
	switch (act) {
	case TACT_RELU: APPLY_LOOP(z > 0 ? z : 0) break;
	case TACT_RELU6: APPLY_LOOP(z < 0 ? 0 : (z > 6 ? 6 : z)) break;
	case TACT_HSWISH: APPLY_LOOP(z * (z + 3 < 0 ? 0 : (z + 3 > 6 ? 6 : z + 3)) / 6) break;
	case TACT_HSIGMOID: APPLY_LOOP((z + 3 < 0 ? 0 : (z + 3 > 6 ? 6 : z + 3)) / 6) break;
	default: APPLY_LOOP(z) break;
	}
}

static inline __m256 slope_v(int act, __m256 z) {
	const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1);
	switch (act) {
	case TACT_RELU: return _mm256_and_ps(_mm256_cmp_ps(z, zero, _CMP_GT_OQ), one);
	case TACT_RELU6: return _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(z, zero, _CMP_GT_OQ), _mm256_cmp_ps(z, _mm256_set1_ps(6), _CMP_LT_OQ)), one);
	case TACT_HSWISH: {
		const __m256 m3 = _mm256_set1_ps(-3), p3 = _mm256_set1_ps(3);
		__m256 mid = _mm256_div_ps(_mm256_add_ps(_mm256_add_ps(z, z), p3), _mm256_set1_ps(6));
		__m256 r = _mm256_blendv_ps(mid, zero, _mm256_cmp_ps(z, m3, _CMP_LE_OQ));
		return _mm256_blendv_ps(r, one, _mm256_cmp_ps(z, p3, _CMP_GE_OQ));
	}
	case TACT_HSIGMOID: {
		__m256 in = _mm256_and_ps(_mm256_cmp_ps(z, _mm256_set1_ps(-3), _CMP_GT_OQ), _mm256_cmp_ps(z, _mm256_set1_ps(3), _CMP_LT_OQ));
		return _mm256_and_ps(in, _mm256_set1_ps(1.0f / 6));
	}
	}
	return one;
}

static inline float slope_s(int act, float z) {
	switch (act) {
	case TACT_RELU: return z > 0 ? 1 : 0;
	case TACT_RELU6: return (z > 0 && z < 6) ? 1 : 0;
	case TACT_HSWISH: return z <= -3 ? 0 : (z >= 3 ? 1 : (2 * z + 3) / 6);
	case TACT_HSIGMOID: return (z > -3 && z < 3) ? 1.0f / 6 : 0;
	}
	return 1;
}

void t_bn_grad_param(const float *x, const float *dy, float *dz, int n, int c, long hw, int c0, int c1,
	const float *mean, const float *invstd, const float *gamma, const float *beta, int act, double *sg, double *sb) {
	for (int ch = c0; ch < c1; ch++) {
		const float m = mean[ch], inv = invstd[ch], g = gamma[ch], bt = beta[ch];
		const __m256 mv = _mm256_set1_ps(m), iv = _mm256_set1_ps(inv), gv = _mm256_set1_ps(g), bv = _mm256_set1_ps(bt);
		double tg = 0, tb = 0;
		for (int i = 0; i < n; i++) {
			const long off = ((long)i * c + ch) * hw;
			const float *xp = x + off, *dp = dy + off;
			float *zp = dz + off;
			__m256 ag = _mm256_setzero_ps(), ab = _mm256_setzero_ps();
			long j = 0;
			for (; j + 8 <= hw; j += 8) {
				__m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xp + j), mv), iv);
				__m256 d = _mm256_loadu_ps(dp + j);
				if (act != TACT_NONE) d = _mm256_mul_ps(d, slope_v(act, _mm256_fmadd_ps(gv, xh, bv)));
				_mm256_storeu_ps(zp + j, d);
				ab = _mm256_add_ps(ab, d);
				ag = _mm256_fmadd_ps(d, xh, ag);
			}
			float rg = 0, rb = 0;
			for (; j < hw; j++) {
				float xh = (xp[j] - m) * inv, d = dp[j];
				if (act != TACT_NONE) d *= slope_s(act, g * xh + bt);
				zp[j] = d; rb += d; rg += d * xh;
			}
			float bufg[8], bufb[8];
			_mm256_storeu_ps(bufg, ag); _mm256_storeu_ps(bufb, ab);
			for (int k = 0; k < 8; k++) { rg += bufg[k]; rb += bufb[k]; }
			tg += rg; tb += rb;
		}
		sg[ch] = tg; sb[ch] = tb;
	}
}

void t_bn_grad_data(const float *x, const float *dz, float *dx, int n, int c, long hw, int c0, int c1,
	const float *mean, const float *invstd, const float *k, const float *mg, const float *mb) {
	for (int ch = c0; ch < c1; ch++) {
		const float m = mean[ch], inv = invstd[ch], kk = k[ch], g = mg[ch], b = mb[ch];
		for (int i = 0; i < n; i++) {
			const long off = ((long)i * c + ch) * hw;
			const float *xp = x + off, *zp = dz + off;
			float *q = dx + off;
			for (long j = 0; j < hw; j++) q[j] = kk * (zp[j] - b - (xp[j] - m) * inv * g);
		}
	}
}

void t_dilate(const float *dy, float *out, long p0, long p1, int oh, int ow, int sh, int sw, int lh, int lw) {
	for (long p = p0; p < p1; p++) {
		const float *s = dy + p * (long)oh * ow;
		float *d = out + p * (long)lh * lw;
		memset(d, 0, sizeof(float) * (size_t)lh * lw);
		for (int i = 0; i < oh; i++)
			for (int j = 0; j < ow; j++) d[(long)i * sh * lw + (long)j * sw] = s[(long)i * ow + j];
	}
}
