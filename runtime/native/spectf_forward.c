/* SpecTf's whole forward pass for one-layer, 64-wide, 8 x 8-head models, float32, x86-64 AVX-512.
 *
 * Per spectrum (reflectance r of S bands, the wavelength part of the embedding precomputed by the caller):
 *   x = LayerNorm1(tanh(r w_refl + wave_embed))               (S, 64)
 *   q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv           (1/sqrt 8 already folded into Wq, bq)
 *   a = attention(q, k, v)                                    spectf_attention.c, 8 heads of 8
 *   f = GELU(LayerNorm2(a Wo^T + bo) W1^T + b1) W2^T + b2     in tiles of 6 rows, never stored whole
 *   probability = softmax(max_over_bands(f) Wh^T + bh)[1]
 * which is the graph the exporter writes (training/spectf_export.py) between its inputs and `probability`.
 *
 * Why: with the attention native, ONNX Runtime's pre/post-attention graphs and the q, k, v / attention
 * tensors that travel between them and the kernel (≈ 0.3 MB per spectrum, out of L2 for a chunk of 8)
 * were ≈ 45 % of the time. Here one spectrum's q, k, v, a (4 x S x 64 floats, 270 kB at S = 268) stay
 * in L2, and the 64-wide products are 6-row register-blocked FMAs.
 *
 * Accuracy: tanh is a rational fit (error <= 4e-7, 7 ulp; Eigen's float tanh), GELU's erf is
 * Abramowitz-Stegun 7.1.26 (absolute error 1.5e-7), exponentials as in spectf_attention.c. The caller
 * (runtime/native/forward.py) checks the parameters against the ONNX graphs once per model. A spectrum
 * with a NaN or infinite value gets a NaN probability.
 *
 * Parameters: one float32 array of spectf_forward_params() values, in the order of the PARAM_ list
 * below, matrices transposed to (in, out). Nothing is allocated here and no global state is kept. */
#include <immintrin.h>
#include <math.h>

#include "spectf_native.h"

#define D 64
#define HEADS 8
#define TILE 6

/* offsets into the parameter array */
enum {
    P_W_REFL = 0, P_LN1_G = P_W_REFL + D, P_LN1_B = P_LN1_G + D,
    P_WQ = P_LN1_B + D, P_WK = P_WQ + D * D, P_WV = P_WK + D * D,
    P_BQ = P_WV + D * D, P_BK = P_BQ + D, P_BV = P_BK + D,
    P_WO = P_BV + D, P_BO = P_WO + D * D, P_LN2_G = P_BO + D, P_LN2_B = P_LN2_G + D,
    P_W1 = P_LN2_B + D, P_B1 = P_W1 + D * D, P_W2 = P_B1 + D, P_B2 = P_W2 + D * D,
    P_WH = P_B2 + D, P_BH = P_WH + 2 * D, P_EPS1 = P_BH + 2, P_EPS2 = P_EPS1 + 1,
    P_COUNT = P_EPS2 + 1
};

long spectf_forward_params(void) { return P_COUNT; }

long spectf_forward_workspace(long s)
{   /* x, q, k, v, a (s x 64 each), the attention's workspace, two tiles, alignment slack */
    return 5 * s * D + spectf_attention_workspace(s) + 2 * TILE * D + 32;
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,fma")
#define LOG2E_F 1.44269504088896341f

static inline __m512 tanh_f(__m512 x)
{   /* x p(x^2) / q(x^2) on |x| <= 7.905, clamped beyond (tanh is 1 there within float32); NaN stays NaN
     * (min/max return their second operand when one is NaN) */
    const __m512 lim = _mm512_set1_ps(7.90531110763549805f);
    x = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), lim), _mm512_min_ps(lim, x));
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.00018790482477e-13f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-8.60467152213735e-11f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(5.12229709037114e-08f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(1.48572235717979e-05f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(6.37261928875436e-04f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(4.89352455891786e-03f));
    __m512 q = _mm512_set1_ps(1.19825839466702e-06f);
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(1.18534705686654e-04f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(2.26843463243900e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(4.89352518554385e-03f));
    return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}

static inline __m512 gelu_f(__m512 h)
{   /* h/2 (1 + erf(h / sqrt 2)); erf(|x|) = 1 - t P(t) e^{-x^2}, t = 1 / (1 + 0.3275911 |x|) */
    __m512 x = _mm512_mul_ps(h, _mm512_set1_ps(0.70710678118654752f));
    __m512 a = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    __m512 e = spectf_exp2_512(_mm512_mul_ps(_mm512_mul_ps(a, a), _mm512_set1_ps(-LOG2E_F)));
    __m512 erf_abs = _mm512_fnmadd_ps(_mm512_mul_ps(p, t), e, _mm512_set1_ps(1.f));
    __m512 erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    return _mm512_mul_ps(_mm512_mul_ps(h, _mm512_set1_ps(0.5f)), _mm512_add_ps(erf, _mm512_set1_ps(1.f)));
}

/* out[r] = x[r] wt + b for R rows of 64 (rows contiguous), wt (64 in, 64 out); R a constant at each call */
static inline __attribute__((always_inline)) void rows_x_matrix(const float *x, long R, const float *wt,
                                                                const float *b, float *out)
{
    __m512 acc[TILE][4];
#pragma GCC unroll 6
    for (long r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            acc[r][c] = _mm512_loadu_ps(b + 16 * c);
    for (int i = 0; i < D; i++) {
        __m512 w0 = _mm512_loadu_ps(wt + i * D), w1 = _mm512_loadu_ps(wt + i * D + 16),
               w2 = _mm512_loadu_ps(wt + i * D + 32), w3 = _mm512_loadu_ps(wt + i * D + 48);
#pragma GCC unroll 6
        for (long r = 0; r < R; r++) {
            __m512 xr = _mm512_set1_ps(x[r * D + i]);
            acc[r][0] = _mm512_fmadd_ps(xr, w0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(xr, w1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(xr, w2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(xr, w3, acc[r][3]);
        }
    }
#pragma GCC unroll 6
    for (long r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            _mm512_storeu_ps(out + r * D + 16 * c, acc[r][c]);
}

static void tile_x_matrix(const float *x, const float *wt, const float *b, float *out)
{
    rows_x_matrix(x, TILE, wt, b, out);
}

static void row_x_matrix(const float *x, const float *wt, const float *b, float *out)
{
    rows_x_matrix(x, 1, wt, b, out);
}

static void linear(const float *x, long rows, const float *wt, const float *b, float *out)
{
    long r = 0;
    for (; r + TILE <= rows; r += TILE)
        tile_x_matrix(x + r * D, wt, b, out + r * D);
    for (; r < rows; r++)
        row_x_matrix(x + r * D, wt, b, out + r * D);
}

static inline __attribute__((always_inline)) void layernorm(float *x, const float *g, const float *b, float eps)
{
    __m512 v[4], sum = _mm512_setzero_ps(), sq = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        v[c] = _mm512_loadu_ps(x + 16 * c);
        sum = _mm512_add_ps(sum, v[c]);
    }
    __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) * (1.f / D));
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        v[c] = _mm512_sub_ps(v[c], mean);
        sq = _mm512_fmadd_ps(v[c], v[c], sq);
    }
    __m512 inv = _mm512_set1_ps(1.f / sqrtf(_mm512_reduce_add_ps(sq) * (1.f / D) + eps));
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++)
        _mm512_storeu_ps(x + 16 * c, _mm512_fmadd_ps(_mm512_mul_ps(v[c], inv), _mm512_loadu_ps(g + 16 * c),
                                                     _mm512_loadu_ps(b + 16 * c)));
}

static float spectrum(const float *r, long s, const float *wave, const float *P, float *x, float *q, float *k,
                      float *v, float *a, float *att_work, float *t1, float *t2, long *exact)
{
    __m512 wr[4];
    for (int c = 0; c < 4; c++)
        wr[c] = _mm512_loadu_ps(P + P_W_REFL + 16 * c);
    for (long i = 0; i < s; i++) {
        __m512 ri = _mm512_set1_ps(r[i]);
        for (int c = 0; c < 4; c++)
            _mm512_storeu_ps(x + i * D + 16 * c, tanh_f(_mm512_fmadd_ps(ri, wr[c], _mm512_loadu_ps(wave + i * D + 16 * c))));
        layernorm(x + i * D, P + P_LN1_G, P + P_LN1_B, P[P_EPS1]);
    }
    linear(x, s, P + P_WQ, P + P_BQ, q);
    linear(x, s, P + P_WK, P + P_BK, k);
    linear(x, s, P + P_WV, P + P_BV, v);
    for (long h = 0; h < HEADS; h++)
        *exact += spectf_attention_head_avx512(q, k, v, a, s, D, h, att_work);
    __m512 m[4];
    for (int c = 0; c < 4; c++)
        m[c] = _mm512_set1_ps(-INFINITY);
    for (long i0 = 0; i0 < s; i0 += TILE) {
        long rows = s - i0 < TILE ? s - i0 : TILE;
        linear(a + i0 * D, rows, P + P_WO, P + P_BO, t1);
        for (long r = 0; r < rows; r++)
            layernorm(t1 + r * D, P + P_LN2_G, P + P_LN2_B, P[P_EPS2]);
        linear(t1, rows, P + P_W1, P + P_B1, t2);
        for (long e = 0; e < rows * D; e += 16)
            _mm512_storeu_ps(t2 + e, gelu_f(_mm512_loadu_ps(t2 + e)));
        linear(t2, rows, P + P_W2, P + P_B2, t1);
        for (long r = 0; r < rows; r++)
            for (int c = 0; c < 4; c++)
                m[c] = _mm512_max_ps(m[c], _mm512_loadu_ps(t1 + r * D + 16 * c));
    }
    float logit[2];
    for (int o = 0; o < 2; o++) {
        __m512 acc = _mm512_setzero_ps();
        for (int c = 0; c < 4; c++)
            acc = _mm512_fmadd_ps(m[c], _mm512_loadu_ps(P + P_WH + o * D + 16 * c), acc);
        logit[o] = _mm512_reduce_add_ps(acc) + P[P_BH + o];
    }
    return 1.f / (1.f + expf(logit[0] - logit[1])); /* softmax over the two classes, class 1 */
}

static int finite_spectrum(const float *r, long s)
{
    for (long i = 0; i < s; i++)
        if (!isfinite(r[i]))
            return 0;
    return 1;
}
#pragma GCC pop_options

/* spectra (n, s) float32 reflectance, C order; wave_embed (s, 64): wavelength_nm * w_wave + b_embed;
 * params: spectf_forward_params() floats; work: spectf_forward_workspace(s) floats; prob: n floats.
 * exact_blocks (may be NULL): attention row blocks computed with an exact row max.
 * Returns 0, or -1 (bad sizes), -2 (workspace too small), -3 (no AVX-512 F + DQ), -4 (params_len wrong). */
int spectf_forward(const float *spectra, long n, long s, const float *wave_embed, const float *params,
                   long params_len, float *work, long work_len, float *prob, long *exact_blocks)
{
    if (s < 1 || n < 0)
        return -1;
    if (work_len < spectf_forward_workspace(s))
        return -2;
    if (spectf_attention_isa() < 2)
        return -3;
    if (params_len != P_COUNT)
        return -4;
    float *x = (float *)(((unsigned long)work + 63) & ~63UL);
    float *q = x + s * D, *k = q + s * D, *v = k + s * D, *a = v + s * D, *att_work = a + s * D;
    float *t1 = att_work + spectf_attention_workspace(s), *t2 = t1 + TILE * D;
    long exact = 0;
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ | DAZ for this call (see spectf_attention.c), then the caller's */
    for (long b = 0; b < n; b++) {
        const float *r = spectra + b * s;
        prob[b] = finite_spectrum(r, s) ? spectrum(r, s, wave_embed, params, x, q, k, v, a, att_work, t1, t2, &exact)
                                        : NAN;
    }
    _mm_setcsr(csr);
    if (exact_blocks)
        *exact_blocks = exact;
    return 0;
}
