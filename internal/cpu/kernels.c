// Direct float32 kernels (AVX2/FMA). See kernels.h.
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include "kernels.h"

#define INLINE static inline __attribute__((always_inline))

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Activations follow PyTorch's vectorised CPU kernels: hardswish is x*min(max(x+3,0),6)/6 and
// hardsigmoid min(max(x+3,0),6)/6, dividing by 6 (not multiplying by 1/6) so results round alike.
INLINE float act1(float v, int act) {
	switch (act) {
	case ACT_RELU: return v > 0.f ? v : 0.f;
	case ACT_RELU6: return v < 0.f ? 0.f : (v > 6.f ? 6.f : v);
	case ACT_HSWISH: { float t = v + 3.f; t = t < 0.f ? 0.f : (t > 6.f ? 6.f : t); return v * t / 6.f; }
	case ACT_HSIGMOID: { float t = v + 3.f; t = t < 0.f ? 0.f : (t > 6.f ? 6.f : t); return t / 6.f; }
	default: return v;
	}
}

INLINE __m256 act8(__m256 v, int act) {
	const __m256 z = _mm256_setzero_ps(), six = _mm256_set1_ps(6.f), three = _mm256_set1_ps(3.f);
	switch (act) {
	case ACT_RELU: return _mm256_max_ps(v, z);
	case ACT_RELU6: return _mm256_min_ps(_mm256_max_ps(v, z), six);
	case ACT_HSWISH: {
		__m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, three), z), six);
		return _mm256_div_ps(_mm256_mul_ps(v, t), six);
	}
	case ACT_HSIGMOID:
		return _mm256_div_ps(_mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, three), z), six), six);
	default: return v;
	}
}

// tail_mask returns a mask whose first n (0..8) lanes are set.
INLINE __m256i tail_mask(int n) {
	static const int m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
	return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

void k_act(int act, float *x, long n) {
	if (act == ACT_NONE) return;
	long i = 0;
	for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, act8(_mm256_loadu_ps(x + i), act));
	for (; i < n; i++) x[i] = act1(x[i], act);
}

void k_bias_act(float *y, int rows, int cols, int ld, const float *bias, int act) {
	if (!bias && act == ACT_NONE) return;
	for (int r = 0; r < rows; r++) {
		float *p = y + (long)r * ld;
		const float b = bias ? bias[r] : 0.f;
		const __m256 vb = _mm256_set1_ps(b);
		int i = 0;
		for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(p + i, act8(_mm256_add_ps(_mm256_loadu_ps(p + i), vb), act));
		for (; i < cols; i++) p[i] = act1(p[i] + b, act);
	}
}

INLINE float hsum8(__m256 v) {
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

void k_gap(const float *x, float *y, long planes, long hw) {
	for (long p = 0; p < planes; p++) {
		const float *s = x + p * hw;
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		long i = 0;
		for (; i + 16 <= hw; i += 16) {
			a0 = _mm256_add_ps(a0, _mm256_loadu_ps(s + i));
			a1 = _mm256_add_ps(a1, _mm256_loadu_ps(s + i + 8));
		}
		float t = hsum8(_mm256_add_ps(a0, a1));
		for (; i < hw; i++) t += s[i];
		y[p] = t / (float)hw;
	}
}

void k_channel_affine_act(float *x, long p0, long p1, int c, long hw, const float *scale, const float *shift, int act) {
	for (long p = p0; p < p1; p++) {
		float *s = x + p * hw;
		const float a = scale[p % c], b = shift[p % c];
		const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
		long i = 0;
		for (; i + 8 <= hw; i += 8) _mm256_storeu_ps(s + i, act8(_mm256_fmadd_ps(_mm256_loadu_ps(s + i), va, vb), act));
		for (; i < hw; i++) s[i] = act1(__builtin_fmaf(s[i], a, b), act);
	}
}

void k_channel_scale(float *x, long p0, long p1, long hw, const float *sc) {
	for (long p = p0; p < p1; p++) {
		float *s = x + p * hw;
		const float a = sc[p];
		const __m256 va = _mm256_set1_ps(a);
		long i = 0;
		for (; i + 8 <= hw; i += 8) _mm256_storeu_ps(s + i, _mm256_mul_ps(_mm256_loadu_ps(s + i), va));
		for (; i < hw; i++) s[i] *= a;
	}
}

void k_add(float *dst, const float *src, long n) {
	long i = 0;
	for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
	for (; i < n; i++) dst[i] += src[i];
}

// copy_stride2 sets dst[i] = src[2*i] for i < n; src holds srclen readable floats.
static void copy_stride2(float *dst, const float *src, int n, int srclen) {
	int i = 0;
	for (; i + 8 <= n && 2 * i + 16 <= srclen; i += 8) {
		const __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
		const __m256 t = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
		_mm256_storeu_ps(dst + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0))));
	}
	for (; i < n; i++) dst[i] = src[2 * i];
}

void k_im2col(const conv_geom *g, const float *x, int c0, int c1, long p0, long p1, float *col, long ldc) {
	const int H = g->H, W = g->W, OW = g->OW, SH = g->SH, SW = g->SW, PT = g->PT, PL = g->PL;
	long row = 0;
	for (int c = c0; c < c1; c++) {
		const float *xc = x + (long)c * H * W;
		for (int kh = 0; kh < g->KH; kh++) {
			for (int kw = 0; kw < g->KW; kw++, row++) {
				float *d = col + row * ldc;
				long p = p0;
				while (p < p1) {
					const int oh = (int)(p / OW), ow = (int)(p % OW);
					const int owEnd = (int)(p1 - p < (long)(OW - ow) ? ow + (p1 - p) : OW);
					const int ih = oh * SH - PT + kh;
					const int cnt = owEnd - ow;
					if (ih < 0 || ih >= H) {
						memset(d, 0, sizeof(float) * cnt);
					} else {
						const float *xr = xc + (long)ih * W;
						if (SW == 1) {
							const int lo = clampi(PL - kw, ow, owEnd), hi = clampi(W + PL - kw, lo, owEnd);
							if (lo > ow) memset(d, 0, sizeof(float) * (lo - ow));
							if (hi > lo) memcpy(d + (lo - ow), xr + lo - PL + kw, sizeof(float) * (hi - lo));
							if (owEnd > hi) memset(d + (hi - ow), 0, sizeof(float) * (owEnd - hi));
						} else {
							// Outputs lo..hi-1 read inside the row: iw = o*SW-PL+kw in [0, W).
							const int lo = clampi((PL - kw + SW - 1) / SW, ow, owEnd);
							const int hi = clampi(PL - kw + W - 1 >= 0 ? (W - 1 + PL - kw) / SW + 1 : 0, lo, owEnd);
							if (lo > ow) memset(d, 0, sizeof(float) * (lo - ow));
							if (hi > lo) {
								const int i0 = lo * SW - PL + kw;
								if (SW == 2)
									copy_stride2(d + (lo - ow), xr + i0, hi - lo, W - i0);
								else
									for (int o = lo; o < hi; o++) d[o - ow] = xr[o * SW - PL + kw];
							}
							if (owEnd > hi) memset(d + (hi - ow), 0, sizeof(float) * (owEnd - hi));
						}
					}
					d += cnt;
					p += cnt;
				}
			}
		}
	}
}

void k_col2im(const conv_geom *g, const float *col, int c0, int c1, float *dx) {
	const int H = g->H, W = g->W, OH = g->OH, OW = g->OW, SH = g->SH, SW = g->SW, PT = g->PT, PL = g->PL;
	const long ohw = (long)OH * OW;
	long row = 0;
	for (int c = c0; c < c1; c++) {
		float *xc = dx + (long)c * H * W;
		for (int kh = 0; kh < g->KH; kh++) {
			for (int kw = 0; kw < g->KW; kw++, row++) {
				const float *s = col + row * ohw;
				for (int oh = 0; oh < OH; oh++) {
					const int ih = oh * SH - PT + kh;
					if (ih < 0 || ih >= H) continue;
					float *xr = xc + (long)ih * W;
					const float *sr = s + (long)oh * OW;
					if (SW == 1) {
						const int lo = clampi(PL - kw, 0, OW), hi = clampi(W + PL - kw, lo, OW);
						float *dd = xr - PL + kw;
						for (int o = lo; o < hi; o++) dd[o] += sr[o];
					} else {
						for (int o = 0; o < OW; o++) {
							const int iw = o * SW - PL + kw;
							if (iw >= 0 && iw < W) xr[iw] += sr[o];
						}
					}
				}
			}
		}
	}
}

// ---- depthwise ----
//
// A padded input plane is stored as SW column-phase planes: padded column j lives in phase j%SW at
// index j/SW. Then for every (kh,kw) the inputs of consecutive outputs are contiguous, for any
// stride, and the inner loops are plain unaligned vector loads. Each phase row has slack so full
// 8-lane loads past the last output stay inside the buffer.

typedef struct {
	int rows;  // padded rows
	int pw;    // phase row width
	long prs;  // phase plane size = rows*pw
} phase_geom;

static phase_geom phase_dims(const conv_geom *g) {
	phase_geom p;
	p.rows = g->H + g->PT + g->PB;
	const int need = (g->OH - 1) * g->SH + g->KH;
	if (need > p.rows) p.rows = need;
	const int full = (g->W + g->PL + g->PR + g->SW - 1) / g->SW;
	const int vec = ((g->OW + 15) & ~15) + (g->KW - 1) / g->SW; // slack for 16-lane loads
	p.pw = imax(full, vec);
	p.prs = (long)p.rows * p.pw;
	return p;
}

static float *phase_alloc(const phase_geom *p, int SW) {
	const size_t bytes = (((size_t)SW * p->prs + 16) * sizeof(float) + 31) & ~(size_t)31;
	float *f = (float *)aligned_alloc(32, bytes);
	if (f) memset(f, 0, bytes);
	return f;
}

// copy_row copies n floats with vector moves (small rows make libc memcpy calls costly).
static inline void copy_row(float *dst, const float *src, int n) {
	int i = 0;
	for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
	if (i < n) {
		const __m256i m = tail_mask(n - i);
		_mm256_maskstore_ps(dst + i, m, _mm256_maskload_ps(src + i, m));
	}
}

// fill_phases writes plane xc (H×W) into the interior of phase layout ph. The padding and slack
// are never written, so they stay zero from phase_alloc for every plane.
static void fill_phases(const conv_geom *g, const phase_geom *pg, const float *xc, float *ph) {
	const int H = g->H, W = g->W, PT = g->PT, PL = g->PL, SW = g->SW, pw = pg->pw;
	if (SW == 2) {
		// One pass per row: even columns iw=2k go to phase PL%2 at PL/2+k, odd ones iw=2k+1 to
		// phase (PL+1)%2 at (PL+1)/2+k.
		float *Pe = ph + (PL % 2) * pg->prs + (long)PT * pw + PL / 2;
		float *Po = ph + ((PL + 1) % 2) * pg->prs + (long)PT * pw + (PL + 1) / 2;
		const int ne = (W + 1) / 2, no = W / 2;
		for (int ih = 0; ih < H; ih++) {
			float *re = Pe + (long)ih * pw, *ro = Po + (long)ih * pw;
			const float *xr = xc + (long)ih * W;
			int k = 0;
			for (; k + 8 <= no; k += 8) {
				const __m256 a = _mm256_loadu_ps(xr + 2 * k), b = _mm256_loadu_ps(xr + 2 * k + 8);
				const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
				const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
				_mm256_storeu_ps(re + k, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0))));
				_mm256_storeu_ps(ro + k, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0))));
			}
			for (int j = k; j < ne; j++) re[j] = xr[2 * j];
			for (int j = k; j < no; j++) ro[j] = xr[2 * j + 1];
		}
		return;
	}
	for (int s = 0; s < SW; s++) {
		float *P = ph + s * pg->prs + (long)PT * pw;
		// Input columns iw with (iw+PL)%SW == s: iw0, iw0+SW, ... at phase index (iw+PL)/SW.
		const int iw0 = ((s - PL) % SW + SW) % SW;
		const int cnt = iw0 < W ? (W - iw0 + SW - 1) / SW : 0;
		const int start = (iw0 + PL) / SW;
		for (int ih = 0; ih < H; ih++) {
			float *r = P + (long)ih * pw + start;
			const float *xr = xc + (long)ih * W + iw0;
			if (SW == 1)
				copy_row(r, xr, W);
			else if (SW == 2)
				copy_stride2(r, xr, cnt, W - iw0);
			else
				for (int k = 0; k < cnt; k++) r[k] = xr[k * SW];
		}
	}
}

// dw_rows computes R output rows starting at oh0 of one plane.
INLINE void dw_rows(const float *ph, long prs, int pw, const float *w, __m256 vb, float *out, int OW,
                    int oh0, const int R, const int KH, const int KW, const int SH, const int SW, int act,
                    __m256i tmask) {
	for (int ow = 0; ow < OW; ow += 8) {
		__m256 acc[8];
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) acc[r] = vb;
#pragma GCC unroll 8
		for (int kh = 0; kh < KH; kh++) {
#pragma GCC unroll 8
			for (int kw = 0; kw < KW; kw++) {
				const __m256 wv = _mm256_broadcast_ss(w + kh * KW + kw);
				const float *src = ph + (kw % SW) * prs + (long)(oh0 * SH + kh) * pw + kw / SW + ow;
#pragma GCC unroll 8
				for (int r = 0; r < R; r++)
					acc[r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(src + (long)r * SH * pw), acc[r]);
			}
		}
		if (ow + 8 <= OW) {
#pragma GCC unroll 8
			for (int r = 0; r < R; r++) _mm256_storeu_ps(out + (long)(oh0 + r) * OW + ow, act8(acc[r], act));
		} else {
#pragma GCC unroll 8
			for (int r = 0; r < R; r++) _mm256_maskstore_ps(out + (long)(oh0 + r) * OW + ow, tmask, act8(acc[r], act));
		}
	}
}

INLINE void dw_plane(const float *ph, long prs, int pw, const float *w, float bias, float *out, int OH, int OW,
                     const int KH, const int KW, const int SH, const int SW, int act) {
	const __m256 vb = _mm256_set1_ps(bias);
	const __m256i tm = tail_mask(OW & 7);
	int oh = 0;
	// 8 independent accumulators cover the FMA latency; smaller blocks finish the plane.
	for (; oh + 8 <= OH; oh += 8) dw_rows(ph, prs, pw, w, vb, out, OW, oh, 8, KH, KW, SH, SW, act, tm);
	if (oh + 4 <= OH) { dw_rows(ph, prs, pw, w, vb, out, OW, oh, 4, KH, KW, SH, SW, act, tm); oh += 4; }
	if (oh + 2 <= OH) { dw_rows(ph, prs, pw, w, vb, out, OW, oh, 2, KH, KW, SH, SW, act, tm); oh += 2; }
	if (oh < OH) dw_rows(ph, prs, pw, w, vb, out, OW, oh, 1, KH, KW, SH, SW, act, tm);
}

// AVX-512 variant, chosen at run time on CPUs that have it: 16 lanes per FMA and cheap masked tails.
#define T512 __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))

static inline T512 __attribute__((always_inline)) __m512 act16(__m512 v, int act) {
	const __m512 z = _mm512_setzero_ps(), six = _mm512_set1_ps(6.f), three = _mm512_set1_ps(3.f);
	switch (act) {
	case ACT_RELU: return _mm512_max_ps(v, z);
	case ACT_RELU6: return _mm512_min_ps(_mm512_max_ps(v, z), six);
	case ACT_HSWISH: {
		__m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, three), z), six);
		return _mm512_div_ps(_mm512_mul_ps(v, t), six);
	}
	case ACT_HSIGMOID:
		return _mm512_div_ps(_mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, three), z), six), six);
	default: return v;
	}
}

static inline T512 __attribute__((always_inline)) void dw_rows16(const float *ph, long prs, int pw, const float *w, __m512 vb,
		float *out, int OW, int oh0, const int R, const int KH, const int KW, const int SH, const int SW, int act, __mmask16 tmask) {
	for (int ow = 0; ow < OW; ow += 16) {
		__m512 acc[8];
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) acc[r] = vb;
#pragma GCC unroll 8
		for (int kh = 0; kh < KH; kh++) {
#pragma GCC unroll 8
			for (int kw = 0; kw < KW; kw++) {
				const __m512 wv = _mm512_set1_ps(w[kh * KW + kw]);
				const float *src = ph + (kw % SW) * prs + (long)(oh0 * SH + kh) * pw + kw / SW + ow;
#pragma GCC unroll 8
				for (int r = 0; r < R; r++)
					acc[r] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(src + (long)r * SH * pw), acc[r]);
			}
		}
		const __mmask16 m = ow + 16 <= OW ? (__mmask16)0xffff : tmask;
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(out + (long)(oh0 + r) * OW + ow, m, act16(acc[r], act));
	}
}

static inline T512 __attribute__((always_inline)) void dw_plane16(const float *ph, long prs, int pw, const float *w, float bias,
		float *out, int OH, int OW, const int KH, const int KW, const int SH, const int SW, int act) {
	const __m512 vb = _mm512_set1_ps(bias);
	const __mmask16 tm = (__mmask16)((1u << (OW & 15)) - 1);
	int oh = 0;
	for (; oh + 8 <= OH; oh += 8) dw_rows16(ph, prs, pw, w, vb, out, OW, oh, 8, KH, KW, SH, SW, act, tm);
	if (oh + 4 <= OH) { dw_rows16(ph, prs, pw, w, vb, out, OW, oh, 4, KH, KW, SH, SW, act, tm); oh += 4; }
	if (oh + 2 <= OH) { dw_rows16(ph, prs, pw, w, vb, out, OW, oh, 2, KH, KW, SH, SW, act, tm); oh += 2; }
	if (oh < OH) dw_rows16(ph, prs, pw, w, vb, out, OW, oh, 1, KH, KW, SH, SW, act, tm);
}

#define DW_SPEC16(K, S)                                                                                       \
	static T512 void dw_plane16_k##K##s##S(const float *ph, long prs, int pw, const float *w, float b, float *out, \
	                                       int OH, int OW, int act) {                                          \
		dw_plane16(ph, prs, pw, w, b, out, OH, OW, K, K, S, S, act);                                           \
	}
DW_SPEC16(3, 1)
DW_SPEC16(3, 2)
DW_SPEC16(5, 1)
DW_SPEC16(5, 2)
DW_SPEC16(7, 1)
DW_SPEC16(7, 2)

typedef void (*dw_plane_fn)(const float *, long, int, const float *, float, float *, int, int, int);

#define DW_SPEC(K, S)                                                                                     \
	static void dw_plane_k##K##s##S(const float *ph, long prs, int pw, const float *w, float b, float *out, \
	                                int OH, int OW, int act) {                                            \
		dw_plane(ph, prs, pw, w, b, out, OH, OW, K, K, S, S, act);                                        \
	}
DW_SPEC(3, 1)
DW_SPEC(3, 2)
DW_SPEC(5, 1)
DW_SPEC(5, 2)
DW_SPEC(7, 1)
DW_SPEC(7, 2)

static void dw_plane_generic(const conv_geom *g, const float *ph, long prs, int pw, const float *w, float b,
                             float *out, int act) {
	dw_plane(ph, prs, pw, w, b, out, g->OH, g->OW, g->KH, g->KW, g->SH, g->SW, act);
}

static dw_plane_fn dw_pick(const conv_geom *g) {
	if (g->KH != g->KW || g->SH != g->SW) return 0;
	// 16 lanes waste too much of short rows (7, 14 wide maps); those stay on 8 lanes.
	if (g->OW >= 12 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
	    __builtin_cpu_supports("avx512dq")) {
		switch (g->KH * 10 + g->SH) {
		case 31: return dw_plane16_k3s1;
		case 32: return dw_plane16_k3s2;
		case 51: return dw_plane16_k5s1;
		case 52: return dw_plane16_k5s2;
		case 71: return dw_plane16_k7s1;
		case 72: return dw_plane16_k7s2;
		}
	}
	switch (g->KH * 10 + g->SH) {
	case 31: return dw_plane_k3s1;
	case 32: return dw_plane_k3s2;
	case 51: return dw_plane_k5s1;
	case 52: return dw_plane_k5s2;
	case 71: return dw_plane_k7s1;
	case 72: return dw_plane_k7s2;
	}
	return 0;
}

int k_dw_forward(const conv_geom *g, const float *x, const float *w, const float *bias, float *y, long p0, long p1,
                 int act) {
	const phase_geom pg = phase_dims(g);
	float *ph = phase_alloc(&pg, g->SW);
	if (!ph) return -1;
	const dw_plane_fn fn = dw_pick(g);
	const long hw = (long)g->H * g->W, ohw = (long)g->OH * g->OW, kk = (long)g->KH * g->KW;
	for (long p = p0; p < p1; p++) {
		const int c = (int)(p % g->C);
		fill_phases(g, &pg, x + p * hw, ph);
		const float b = bias ? bias[c] : 0.f;
		if (fn)
			fn(ph, pg.prs, pg.pw, w + c * kk, b, y + p * ohw, g->OH, g->OW, act);
		else
			dw_plane_generic(g, ph, pg.prs, pg.pw, w + c * kk, b, y + p * ohw, act);
	}
	free(ph);
	return 0;
}

int k_dw_backward_data(const conv_geom *g, const float *dy, const float *w, float *dx, long p0, long p1) {
	const phase_geom pg = phase_dims(g);
	float *ph = phase_alloc(&pg, g->SW);
	if (!ph) return -1;
	const int OH = g->OH, OW = g->OW, SH = g->SH, SW = g->SW, KH = g->KH, KW = g->KW, pw = pg.pw;
	const long hw = (long)g->H * g->W, ohw = (long)OH * OW, kk = (long)KH * KW;
	const __m256i tm = tail_mask(OW & 7);
	for (long p = p0; p < p1; p++) {
		const int c = (int)(p % g->C);
		const float *wc = w + c * kk;
		const float *d = dy + p * ohw;
		memset(ph, 0, sizeof(float) * (size_t)(SW * pg.prs));
		// Scatter: padded (oh*SH+kh, ow*SW+kw) += w[kh,kw]*dy[oh,ow]; contiguous in phase layout.
		for (int oh = 0; oh < OH; oh++) {
			const float *dr = d + (long)oh * OW;
			for (int kh = 0; kh < KH; kh++) {
				for (int kw = 0; kw < KW; kw++) {
					const __m256 wv = _mm256_set1_ps(wc[kh * KW + kw]);
					float *dst = ph + (kw % SW) * pg.prs + (long)(oh * SH + kh) * pw + kw / SW;
					int ow = 0;
					for (; ow + 8 <= OW; ow += 8)
						_mm256_storeu_ps(dst + ow, _mm256_fmadd_ps(wv, _mm256_loadu_ps(dr + ow), _mm256_loadu_ps(dst + ow)));
					if (ow < OW)
						_mm256_storeu_ps(dst + ow, _mm256_fmadd_ps(wv, _mm256_maskload_ps(dr + ow, tm), _mm256_loadu_ps(dst + ow)));
				}
			}
		}
		// Gather the interior back into dx.
		float *xo = dx + p * hw;
		for (int ih = 0; ih < g->H; ih++) {
			for (int iw = 0; iw < g->W; iw++) {
				const int j = iw + g->PL;
				xo[(long)ih * g->W + iw] = ph[(j % SW) * pg.prs + (long)(ih + g->PT) * pw + j / SW];
			}
		}
	}
	free(ph);
	return 0;
}

int k_dw_backward_filter(const conv_geom *g, int n, const float *x, const float *dy, float *dw, int c0, int c1) {
	const phase_geom pg = phase_dims(g);
	const int OH = g->OH, OW = g->OW, SH = g->SH, SW = g->SW, KH = g->KH, KW = g->KW, pw = pg.pw;
	const long kk = (long)KH * KW, hw = (long)g->H * g->W, ohw = (long)OH * OW;
	float *ph = phase_alloc(&pg, SW);
	__m256 *acc = (__m256 *)aligned_alloc(32, sizeof(__m256) * (size_t)kk);
	if (!ph || !acc) { free(ph); free(acc); return -1; }
	const __m256i tm = tail_mask(OW & 7);
	for (int c = c0; c < c1; c++) {
		for (long i = 0; i < kk; i++) acc[i] = _mm256_setzero_ps();
		for (int b = 0; b < n; b++) {
			const long p = (long)b * g->C + c;
			fill_phases(g, &pg, x + p * hw, ph);
			const float *d = dy + p * ohw;
			for (int kh = 0; kh < KH; kh++) {
				for (int kw = 0; kw < KW; kw++) {
					__m256 s = acc[kh * KW + kw];
					const float *src0 = ph + (kw % SW) * pg.prs + (long)kh * pw + kw / SW;
					for (int oh = 0; oh < OH; oh++) {
						const float *src = src0 + (long)oh * SH * pw;
						const float *dr = d + (long)oh * OW;
						int ow = 0;
						for (; ow + 8 <= OW; ow += 8)
							s = _mm256_fmadd_ps(_mm256_loadu_ps(dr + ow), _mm256_loadu_ps(src + ow), s);
						if (ow < OW)
							s = _mm256_fmadd_ps(_mm256_maskload_ps(dr + ow, tm), _mm256_loadu_ps(src + ow), s);
					}
					acc[kh * KW + kw] = s;
				}
			}
		}
		for (long i = 0; i < kk; i++) dw[(long)c * kk + i] = hsum8(acc[i]);
	}
	free(acc);
	free(ph);
	return 0;
}

// ---- Pointwise (1×1, stride 1, unpadded) convolution as a direct register-blocked kernel.
// For the narrow channel counts of mobile networks (C of 16..200) OpenBLAS spends most of its
// time packing; this kernel keeps an 8-row × 32-pixel (AVX-512) or 4 × 24 (AVX2) block of
// outputs in registers and streams the input rows once per block.

static inline T512 __attribute__((always_inline)) void pw_block16(const float *x, long ldx, const float *w, int C,
		const float *bias, float *y, long ldy, int k, const int R, long p, const int V, __mmask16 m0, __mmask16 m1, int act) {
	__m512 acc[8][2];
	for (int r = 0; r < R; r++) {
		__m512 b = _mm512_set1_ps(bias ? bias[k + r] : 0.f);
		acc[r][0] = b;
		acc[r][1] = b;
	}
	const float *wr = w + (long)k * C;
	for (int c = 0; c < C; c++) {
		const float *xr = x + (long)c * ldx + p;
		__m512 x0 = _mm512_maskz_loadu_ps(m0, xr);
		__m512 x1 = V > 1 ? _mm512_maskz_loadu_ps(m1, xr + 16) : x0;
		for (int r = 0; r < R; r++) {
			__m512 wv = _mm512_set1_ps(wr[(long)r * C + c]);
			acc[r][0] = _mm512_fmadd_ps(wv, x0, acc[r][0]);
			if (V > 1) acc[r][1] = _mm512_fmadd_ps(wv, x1, acc[r][1]);
		}
	}
	for (int r = 0; r < R; r++) {
		float *yr = y + (long)(k + r) * ldy + p;
		_mm512_mask_storeu_ps(yr, m0, act16(acc[r][0], act));
		if (V > 1) _mm512_mask_storeu_ps(yr + 16, m1, act16(acc[r][1], act));
	}
}

static T512 void pw512(const float *x, long ldx, const float *w, int C, const float *bias, float *y, long ldy,
		int k0, int k1, long p0, long p1, int act) {
	for (long p = p0; p < p1; p += 32) {
		long n = p1 - p;
		__mmask16 m0 = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
		__mmask16 m1 = n >= 32 ? 0xFFFF : (n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0);
		int k = k0;
		if (n > 16) {
			for (; k + 8 <= k1; k += 8) pw_block16(x, ldx, w, C, bias, y, ldy, k, 8, p, 2, m0, m1, act);
			for (; k + 4 <= k1; k += 4) pw_block16(x, ldx, w, C, bias, y, ldy, k, 4, p, 2, m0, m1, act);
			for (; k < k1; k++) pw_block16(x, ldx, w, C, bias, y, ldy, k, 1, p, 2, m0, m1, act);
		} else {
			for (; k + 8 <= k1; k += 8) pw_block16(x, ldx, w, C, bias, y, ldy, k, 8, p, 1, m0, m1, act);
			for (; k + 4 <= k1; k += 4) pw_block16(x, ldx, w, C, bias, y, ldy, k, 4, p, 1, m0, m1, act);
			for (; k < k1; k++) pw_block16(x, ldx, w, C, bias, y, ldy, k, 1, p, 1, m0, m1, act);
		}
	}
}

INLINE void pw_block8(const float *x, long ldx, const float *w, int C, const float *bias, float *y, long ldy,
		int k, const int R, long p, int n, int act) {
	// R ≤ 4 rows × 3 vectors of 8 pixels; n < 24 pixels use masked loads and stores.
	__m256 acc[4][3];
	__m256i mk[3];
	for (int v = 0; v < 3; v++) mk[v] = tail_mask(clampi(n - 8 * v, 0, 8));
	for (int r = 0; r < R; r++) {
		__m256 b = _mm256_set1_ps(bias ? bias[k + r] : 0.f);
		acc[r][0] = acc[r][1] = acc[r][2] = b;
	}
	const float *wr = w + (long)k * C;
	for (int c = 0; c < C; c++) {
		const float *xr = x + (long)c * ldx + p;
		__m256 x0 = _mm256_maskload_ps(xr, mk[0]);
		__m256 x1 = _mm256_maskload_ps(xr + 8, mk[1]);
		__m256 x2 = _mm256_maskload_ps(xr + 16, mk[2]);
		for (int r = 0; r < R; r++) {
			__m256 wv = _mm256_broadcast_ss(wr + (long)r * C + c);
			acc[r][0] = _mm256_fmadd_ps(wv, x0, acc[r][0]);
			acc[r][1] = _mm256_fmadd_ps(wv, x1, acc[r][1]);
			acc[r][2] = _mm256_fmadd_ps(wv, x2, acc[r][2]);
		}
	}
	for (int r = 0; r < R; r++) {
		float *yr = y + (long)(k + r) * ldy + p;
		for (int v = 0; v < 3; v++) _mm256_maskstore_ps(yr + 8 * v, mk[v], act8(acc[r][v], act));
	}
}

static void pw256(const float *x, long ldx, const float *w, int C, const float *bias, float *y, long ldy,
		int k0, int k1, long p0, long p1, int act) {
	for (long p = p0; p < p1; p += 24) {
		int n = (int)(p1 - p < 24 ? p1 - p : 24);
		int k = k0;
		for (; k + 4 <= k1; k += 4) pw_block8(x, ldx, w, C, bias, y, ldy, k, 4, p, n, act);
		for (; k < k1; k++) pw_block8(x, ldx, w, C, bias, y, ldy, k, 1, p, n, act);
	}
}

void k_pointwise(const float *x, long ldx, const float *w, int C, const float *bias, float *y, long ldy,
		int k0, int k1, long p0, long p1, int act) {
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
		pw512(x, ldx, w, C, bias, y, ldy, k0, k1, p0, p1, act);
		return;
	}
	pw256(x, ldx, w, C, bias, y, ldy, k0, k1, p0, p1, act);
}
