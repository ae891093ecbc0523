/* Fused self-attention for 8-wide heads (SpecTf: 8 heads x 8), float32, x86-64 AVX-512 or AVX2+FMA.
 *
 * out[b, i, h*8:(h+1)*8] = softmax_j(q[b, i, h*8:] . k[b, j, h*8:]) @ v[b, :, h*8:]   (q already scaled)
 *
 * Why: with 8-wide heads attention is (S x 8) @ (8 x S) products and S x S exponentials per head;
 * ONNX Runtime's CPU kernels run them as tiny blocked GEMMs plus a separate softmax. Here 16 (AVX-512)
 * or 8 (AVX2) query rows share each key, held as one vector per head channel (q is transposed per head,
 * by 8 x 8 register transposes, and pre-multiplied by log2(e) so scores come out in log2 units). No
 * S x S tensor is written to memory.
 *
 * Two ways to compute a block of rows, the same softmax:
 * - one pass (AVX-512 only, the usual case): scores, 2^score, row sum and P·V in one loop over keys,
 *   with no row max. Softmax does not depend on the shift, so none is needed while the exponentials
 *   stay in float32's normal range; the block is accepted only if every row sum lies in
 *   [2^-50, 2^100] and every output is finite, else it is recomputed the second way. Under that check
 *   nothing that matters is lost: what flushes to zero is below 2^-67 of its row sum.
 * - exact max (AVX2, and AVX-512 blocks the check refused: very peaked rows): scores into an L1
 *   buffer with the exact row max, 2^(score - max), then P·V.
 * Exponentials are 2^t = 2^floor(t) · p(t - floor(t)), p a degree-5 fit (relative error 2e-7).
 *
 * The caller (runtime/native/attention.py) checks shapes and passes a workspace of
 * spectf_attention_workspace(s) floats; nothing is allocated here and no global state is kept.
 * Build: gcc -O2 -fPIC -shared (no -march: each path carries its own target attribute). */
#include <immintrin.h>

#include "spectf_native.h"

#define HD 8
#define LOG2E 1.44269504088896341f

long spectf_attention_workspace(long s)
{
    long sp = (s + 15) & ~15L;
    return HD * sp + 16 * s + HD * 16 + 16; /* q transposed, scores, output block, alignment slack */
}

/* ---------------------------------------------------------------- layout, shared by both paths (AVX) */
#pragma GCC push_options
#pragma GCC target("avx")
/* r[0..7] (8 floats each) transposed in registers: afterwards r[c][k] is the old r[k][c] */
static inline void transpose8(__m256 *r)
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* log2(e) · q of head h as (8, sp): query rows contiguous per channel, zero rows past s */
static void transpose_q(const float *qb, long s, long dm, long h, float *qt, long sp)
{
    const __m256 scale = _mm256_set1_ps(LOG2E);
    long i = 0;
    for (; i + 8 <= s; i += 8) {
        __m256 r[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++)
            r[k] = _mm256_mul_ps(_mm256_loadu_ps(qb + (i + k) * dm + h * HD), scale);
        transpose8(r);
#pragma GCC unroll 8
        for (int d = 0; d < HD; d++)
            _mm256_store_ps(qt + d * sp + i, r[d]); /* qt is 64-byte aligned, sp and i multiples of 8 */
    }
    for (; i < sp; i++)
        for (int d = 0; d < HD; d++)
            qt[d * sp + i] = i < s ? LOG2E * qb[i * dm + h * HD + d] : 0.f;
}

/* one block's output (8, w), w = 8 or 16, back to rows i0 .. min(i0 + w, s) of head h */
static void scatter_out(const float *ot, long w, float *ob, long i0, long s, long dm, long h)
{
    for (long g = 0; g < w && i0 + g < s; g += 8) {
        __m256 r[8];
#pragma GCC unroll 8
        for (int d = 0; d < HD; d++)
            r[d] = _mm256_load_ps(ot + d * w + g);
        transpose8(r); /* r[k]: row i0 + g + k, its 8 channels */
        long rows = s - (i0 + g) < 8 ? s - (i0 + g) : 8;
        for (long k = 0; k < rows; k++)
            _mm256_storeu_ps(ob + (i0 + g + k) * dm + h * HD, r[k]);
    }
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX-512 (16 rows per block) */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,fma")
/* 16 log2-unit scores of key j for the block's rows (q: 8 channel vectors; two chains of 4 FMAs) */
static inline __m512 scores_512(const __m512 *q, const float *kj)
{
    __m512 t = _mm512_mul_ps(q[0], _mm512_set1_ps(kj[0]));
    t = _mm512_fmadd_ps(q[1], _mm512_set1_ps(kj[1]), t);
    t = _mm512_fmadd_ps(q[2], _mm512_set1_ps(kj[2]), t);
    t = _mm512_fmadd_ps(q[3], _mm512_set1_ps(kj[3]), t);
    __m512 u = _mm512_mul_ps(q[4], _mm512_set1_ps(kj[4]));
    u = _mm512_fmadd_ps(q[5], _mm512_set1_ps(kj[5]), u);
    u = _mm512_fmadd_ps(q[6], _mm512_set1_ps(kj[6]), u);
    u = _mm512_fmadd_ps(q[7], _mm512_set1_ps(kj[7]), u);
    return _mm512_add_ps(t, u);
}

/* out += p · v_j for 8 channel accumulators */
static inline void accumulate_512(__m512 *o, __m512 p, const float *vj)
{
#pragma GCC unroll 8
    for (int d = 0; d < HD; d++)
        o[d] = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[d]), o[d]);
}

/* the 16 rows' outputs o / l into ot (8, 16); returns the mask of lanes holding inf or NaN */
static inline __mmask16 store_out_512(const __m512 *o, __m512 l, float *ot)
{
    __m512 r = _mm512_div_ps(_mm512_set1_ps(1.f), l);
    __mmask16 bad = 0;
#pragma GCC unroll 8
    for (int d = 0; d < HD; d++) {
        __m512 y = _mm512_mul_ps(o[d], r);
        bad |= _mm512_fpclass_ps_mask(y, 0x99); /* QNaN | +inf | -inf | SNaN */
        _mm512_store_ps(ot + 16 * d, y);
    }
    return bad;
}

/* One pass, no row max: 1 if the block's rows are done, 0 if a row sum left [2^-50, 2^100] or an output
 * is not finite (the caller then uses block_exact_512). qt: the block's first row in the (8, sp) q. */
static int block_one_pass_512(const float *qt, long sp, const float *kh, const float *vh, long s, long dm,
                              float *ot)
{
    __m512 q[8], o[8], l = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int d = 0; d < HD; d++) {
        q[d] = _mm512_load_ps(qt + d * sp);
        o[d] = l;
    }
    for (long j = 0; j < s; j++, kh += dm, vh += dm) {
        __m512 p = spectf_exp2_512(scores_512(q, kh));
        l = _mm512_add_ps(l, p);
        accumulate_512(o, p, vh);
    }
    if (_mm512_cmp_ps_mask(l, _mm512_set1_ps(0x1p-50f), _CMP_GE_OQ) != 0xFFFF ||
        _mm512_cmp_ps_mask(l, _mm512_set1_ps(0x1p100f), _CMP_LE_OQ) != 0xFFFF)
        return 0;
    return store_out_512(o, l, ot) == 0;
}

/* Exact row max: scores into sc (16 per key, stays in L1), 2^(score - max), then P·V. */
static void block_exact_512(const float *qt, long sp, const float *kh, const float *vh, long s, long dm,
                            float *sc, float *ot)
{
    __m512 q[8], o[8], l = _mm512_setzero_ps(), m = _mm512_set1_ps(-3.0e38f);
#pragma GCC unroll 8
    for (int d = 0; d < HD; d++) {
        q[d] = _mm512_load_ps(qt + d * sp);
        o[d] = l;
    }
    for (long j = 0; j < s; j++, kh += dm) {
        __m512 t = scores_512(q, kh);
        _mm512_store_ps(sc + 16 * j, t);
        m = _mm512_max_ps(m, t);
    }
    for (long j = 0; j < s; j++, vh += dm) {
        __m512 p = spectf_exp2_512(_mm512_sub_ps(_mm512_load_ps(sc + 16 * j), m));
        l = _mm512_add_ps(l, p);
        accumulate_512(o, p, vh);
    }
    store_out_512(o, l, ot);
}

static long head_512(const float *qb, const float *kb, const float *vb, float *ob,
                     long s, long dm, long h, float *qt, long sp, float *sc, float *ot)
{
    long exact = 0;
    transpose_q(qb, s, dm, h, qt, sp);
    for (long i0 = 0; i0 < s; i0 += 16) {
        if (!block_one_pass_512(qt + i0, sp, kb + h * HD, vb + h * HD, s, dm, ot)) {
            block_exact_512(qt + i0, sp, kb + h * HD, vb + h * HD, s, dm, sc, ot);
            exact++;
        }
        scatter_out(ot, 16, ob, i0, s, dm, h);
    }
    return exact;
}

/* One head of one (s, dm) q, k, v on AVX-512 with the layout of spectf_attention's workspace (``work``:
 * spectf_attention_workspace(s) floats, any alignment), for spectf_forward.c; the caller sets FTZ/DAZ.
 * Returns the row blocks computed with an exact row max. */
long spectf_attention_head_avx512(const float *qb, const float *kb, const float *vb, float *ob, long s, long dm,
                                  long h, float *work)
{
    long sp = (s + 15) & ~15L;
    float *qt = (float *)(((unsigned long)work + 63) & ~63UL), *sc = qt + HD * sp, *ot = sc + 16 * s;
    return head_512(qb, kb, vb, ob, s, dm, h, qt, sp, sc, ot);
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX2 + FMA (8 rows per block) */
/* Exact row max only: without AVX-512's scalef, 2^n comes from exponent bits, which need n clamped, and
 * the one-pass form saves little. */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
static inline __m256 exp2m_256(__m256 s, __m256 m)
{   /* 2^(s - m), s and m in log2 units: t = s - m = n + f, |f| <= 1/2 */
    __m256 t = _mm256_sub_ps(s, m);
    t = _mm256_max_ps(t, _mm256_set1_ps(-126.0f)); /* 2^n by exponent bits: keep n a normal exponent */
    __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(t, n);
    __m256 p = _mm256_set1_ps(0.0013400432653725147f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.009676037356257439f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.05550327152013779f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.2402210682630539f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.6931471824645996f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0000001192092896f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static long head_256(const float *qb, const float *kb, const float *vb, float *ob,
                     long s, long dm, long h, float *qt, long sp, float *sc, float *ot)
{
    transpose_q(qb, s, dm, h, qt, sp);
    for (long i0 = 0; i0 < s; i0 += 8) {
        __m256 q[8], o[8], l = _mm256_setzero_ps(), m = _mm256_set1_ps(-3.0e38f);
#pragma GCC unroll 8
        for (int d = 0; d < HD; d++) {
            q[d] = _mm256_load_ps(qt + d * sp + i0);
            o[d] = l;
        }
        const float *kj = kb + h * HD;
        for (long j = 0; j < s; j++, kj += dm) {
            __m256 t = _mm256_mul_ps(q[0], _mm256_broadcast_ss(kj + 0));
            t = _mm256_fmadd_ps(q[1], _mm256_broadcast_ss(kj + 1), t);
            t = _mm256_fmadd_ps(q[2], _mm256_broadcast_ss(kj + 2), t);
            t = _mm256_fmadd_ps(q[3], _mm256_broadcast_ss(kj + 3), t);
            __m256 u = _mm256_mul_ps(q[4], _mm256_broadcast_ss(kj + 4));
            u = _mm256_fmadd_ps(q[5], _mm256_broadcast_ss(kj + 5), u);
            u = _mm256_fmadd_ps(q[6], _mm256_broadcast_ss(kj + 6), u);
            u = _mm256_fmadd_ps(q[7], _mm256_broadcast_ss(kj + 7), u);
            t = _mm256_add_ps(t, u);
            _mm256_store_ps(sc + 8 * j, t);
            m = _mm256_max_ps(m, t);
        }
        const float *vj = vb + h * HD;
        for (long j = 0; j < s; j++, vj += dm) {
            __m256 p = exp2m_256(_mm256_load_ps(sc + 8 * j), m);
            l = _mm256_add_ps(l, p);
#pragma GCC unroll 8
            for (int d = 0; d < HD; d++)
                o[d] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + d), o[d]);
        }
        __m256 r = _mm256_div_ps(_mm256_set1_ps(1.f), l);
#pragma GCC unroll 8
        for (int d = 0; d < HD; d++)
            _mm256_store_ps(ot + 8 * d, _mm256_mul_ps(o[d], r));
        scatter_out(ot, 8, ob, i0, s, dm, h);
    }
    return (s + 7) / 8;
}
#pragma GCC pop_options

/* 2: AVX-512 (F + DQ), 1: AVX2 + FMA, 0: neither (the caller then uses ONNX Runtime's attention). */
int spectf_attention_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
    return 0;
}

/* q, k, v, out: (n, s, heads*head_dim) float32, C order. isa: 2 or 1 (at most spectf_attention_isa()).
 * exact_blocks (may be NULL): set to the number of row blocks computed with an exact row max.
 * Returns 0, or -1 (head_dim is not 8), -2 (workspace too small), -3 (isa not available here). */
int spectf_attention(const float *q, const float *k, const float *v, float *out, long n, long s,
                     long heads, long head_dim, float *work, long work_len, int isa, long *exact_blocks)
{
    if (head_dim != HD || heads < 1 || s < 1 || n < 0)
        return -1;
    if (work_len < spectf_attention_workspace(s))
        return -2;
    if (isa < 1 || isa > spectf_attention_isa())
        return -3;
    long dm = heads * HD, sp = (s + 15) & ~15L, exact = 0;
    float *base = (float *)(((unsigned long)work + 63) & ~63UL);
    float *qt = base, *sc = qt + HD * sp, *ot = sc + 16 * s;
    /* Peaked attention rows give exponentials below 2^-126: as denormals every FMA on them takes a
     * microcode assist (≈ 1.6x slower end to end). Flush them to zero for this call (relative change
     * < 2^-67 of a row sum >= 2^-50 in the one-pass form, < 1e-37 with the exact max), then restore
     * the caller's MXCSR (per thread). */
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ | DAZ */
    /* ot and sc stay 64-byte aligned: HD*sp and 16*s are multiples of 16 floats */
    for (long b = 0; b < n; b++) {
        const float *qb = q + b * s * dm, *kb = k + b * s * dm, *vb = v + b * s * dm;
        float *ob = out + b * s * dm;
        for (long h = 0; h < heads; h++)
            exact += isa == 2 ? head_512(qb, kb, vb, ob, s, dm, h, qt, sp, sc, ot)
                              : head_256(qb, kb, vb, ob, s, dm, h, qt, sp, sc, ot);
    }
    _mm_setcsr(csr);
    if (exact_blocks)
        *exact_blocks = exact;
    return 0;
}
