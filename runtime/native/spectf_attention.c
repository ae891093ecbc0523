/* Fused self-attention for 8-wide heads (SpecTf: 8 heads x 8), float32, x86-64 AVX-512F or AVX2+FMA.
 *
 * out[b, i, h*8:(h+1)*8] = softmax_j(q[b, i, h*8:] . k[b, j, h*8:]) @ v[b, :, h*8:]   (q already scaled)
 *
 * Why: with 8-wide heads attention is (S x 8) @ (8 x S) products and S x S exponentials per head;
 * ONNX Runtime's CPU kernels run them as tiny blocked GEMMs plus a separate softmax. Here 16 (AVX-512)
 * or 8 (AVX2) query rows share each key: scores are computed once into a per-row-block buffer that
 * stays in L1, with an exact per-row max, then exponentiated (2^t by a degree-5 fit, relative error
 * 2.5e-7) and accumulated against V in registers. No S x S tensor is written to memory.
 *
 * The caller (runtime/native/attention.py) checks shapes and passes a workspace of
 * spectf_attention_workspace(s) floats; nothing is allocated here and no global state is kept.
 * Build: gcc -O2 -fPIC -shared (no -march: each path carries its own target attribute). */
#include <immintrin.h>

#define HD 8
#define LOG2E 1.44269504088896341f

long spectf_attention_workspace(long s)
{
    long sp = (s + 15) & ~15L;
    return HD * sp + 16 * s + HD * 16 + 16; /* q transposed, scores, output block, alignment slack */
}

/* q of head h as (8, sp): query rows contiguous per channel, zero rows past s */
static void transpose_q(const float *qb, long s, long dm, long h, float *qt, long sp)
{
    for (long i = 0; i < sp; i++)
        for (int d = 0; d < HD; d++)
            qt[d * sp + i] = i < s ? qb[i * dm + h * HD + d] : 0.f;
}

/* one block's output (8, w) back to rows i0 .. min(i0 + w, s) of head h */
static void scatter_out(const float *ot, long w, float *ob, long i0, long s, long dm, long h)
{
    long iend = i0 + w < s ? i0 + w : s;
    for (long i = i0; i < iend; i++)
        for (int d = 0; d < HD; d++)
            ob[i * dm + h * HD + d] = ot[d * w + (i - i0)];
}

/* ---------------------------------------------------------------- AVX-512F (16 rows per block) */
#pragma GCC push_options
#pragma GCC target("avx512f,fma")
static inline __m512 exp2m_512(__m512 s, __m512 mlog2e)
{   /* exp(s - m) as 2^t, t = s·log2(e) - m·log2(e) = n + f, |f| <= 1/2 */
    __m512 t = _mm512_fmsub_ps(s, _mm512_set1_ps(LOG2E), mlog2e);
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(0.0013400432653725147f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.009676037356257439f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.05550327152013779f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.2402210682630539f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6931471824645996f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000001192092896f));
    return _mm512_scalef_ps(p, n); /* p·2^n; underflows to 0 for very negative t */
}

static void head_512(const float *qb, const float *kb, const float *vb, float *ob,
                     long s, long dm, long h, float *qt, long sp, float *sc, float *ot)
{
    transpose_q(qb, s, dm, h, qt, sp);
    for (long i0 = 0; i0 < sp; i0 += 16) {
        __m512 q0 = _mm512_load_ps(qt + 0 * sp + i0), q1 = _mm512_load_ps(qt + 1 * sp + i0);
        __m512 q2 = _mm512_load_ps(qt + 2 * sp + i0), q3 = _mm512_load_ps(qt + 3 * sp + i0);
        __m512 q4 = _mm512_load_ps(qt + 4 * sp + i0), q5 = _mm512_load_ps(qt + 5 * sp + i0);
        __m512 q6 = _mm512_load_ps(qt + 6 * sp + i0), q7 = _mm512_load_ps(qt + 7 * sp + i0);
        __m512 m = _mm512_set1_ps(-3.0e38f);
        const float *kj = kb + h * HD;
        for (long j = 0; j < s; j++, kj += dm) {
            __m512 t = _mm512_mul_ps(q0, _mm512_set1_ps(kj[0]));
            t = _mm512_fmadd_ps(q1, _mm512_set1_ps(kj[1]), t);
            t = _mm512_fmadd_ps(q2, _mm512_set1_ps(kj[2]), t);
            t = _mm512_fmadd_ps(q3, _mm512_set1_ps(kj[3]), t);
            __m512 u = _mm512_mul_ps(q4, _mm512_set1_ps(kj[4]));
            u = _mm512_fmadd_ps(q5, _mm512_set1_ps(kj[5]), u);
            u = _mm512_fmadd_ps(q6, _mm512_set1_ps(kj[6]), u);
            u = _mm512_fmadd_ps(q7, _mm512_set1_ps(kj[7]), u);
            t = _mm512_add_ps(t, u);
            _mm512_store_ps(sc + 16 * j, t);
            m = _mm512_max_ps(m, t);
        }
        __m512 ml = _mm512_mul_ps(m, _mm512_set1_ps(LOG2E));
        for (long j = 0; j < s; j++)
            _mm512_store_ps(sc + 16 * j, exp2m_512(_mm512_load_ps(sc + 16 * j), ml));
        __m512 l = _mm512_setzero_ps();
        __m512 o0 = l, o1 = l, o2 = l, o3 = l, o4 = l, o5 = l, o6 = l, o7 = l;
        const float *vj = vb + h * HD;
        for (long j = 0; j < s; j++, vj += dm) {
            __m512 p = _mm512_load_ps(sc + 16 * j);
            l = _mm512_add_ps(l, p);
            o0 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[0]), o0);
            o1 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[1]), o1);
            o2 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[2]), o2);
            o3 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[3]), o3);
            o4 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[4]), o4);
            o5 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[5]), o5);
            o6 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[6]), o6);
            o7 = _mm512_fmadd_ps(p, _mm512_set1_ps(vj[7]), o7);
        }
        __m512 r = _mm512_div_ps(_mm512_set1_ps(1.f), l);
        _mm512_store_ps(ot + 0, _mm512_mul_ps(o0, r));   _mm512_store_ps(ot + 16, _mm512_mul_ps(o1, r));
        _mm512_store_ps(ot + 32, _mm512_mul_ps(o2, r));  _mm512_store_ps(ot + 48, _mm512_mul_ps(o3, r));
        _mm512_store_ps(ot + 64, _mm512_mul_ps(o4, r));  _mm512_store_ps(ot + 80, _mm512_mul_ps(o5, r));
        _mm512_store_ps(ot + 96, _mm512_mul_ps(o6, r));  _mm512_store_ps(ot + 112, _mm512_mul_ps(o7, r));
        scatter_out(ot, 16, ob, i0, s, dm, h);
    }
}
#pragma GCC pop_options

/* ---------------------------------------------------------------- AVX2 + FMA (8 rows per block) */
#pragma GCC push_options
#pragma GCC target("avx2,fma")
static inline __m256 exp2m_256(__m256 s, __m256 mlog2e)
{
    __m256 t = _mm256_fmsub_ps(s, _mm256_set1_ps(LOG2E), mlog2e);
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

static void head_256(const float *qb, const float *kb, const float *vb, float *ob,
                     long s, long dm, long h, float *qt, long sp, float *sc, float *ot)
{
    transpose_q(qb, s, dm, h, qt, sp);
    for (long i0 = 0; i0 < sp; i0 += 8) {
        __m256 q0 = _mm256_load_ps(qt + 0 * sp + i0), q1 = _mm256_load_ps(qt + 1 * sp + i0);
        __m256 q2 = _mm256_load_ps(qt + 2 * sp + i0), q3 = _mm256_load_ps(qt + 3 * sp + i0);
        __m256 q4 = _mm256_load_ps(qt + 4 * sp + i0), q5 = _mm256_load_ps(qt + 5 * sp + i0);
        __m256 q6 = _mm256_load_ps(qt + 6 * sp + i0), q7 = _mm256_load_ps(qt + 7 * sp + i0);
        __m256 m = _mm256_set1_ps(-3.0e38f);
        const float *kj = kb + h * HD;
        for (long j = 0; j < s; j++, kj += dm) {
            __m256 t = _mm256_mul_ps(q0, _mm256_broadcast_ss(kj + 0));
            t = _mm256_fmadd_ps(q1, _mm256_broadcast_ss(kj + 1), t);
            t = _mm256_fmadd_ps(q2, _mm256_broadcast_ss(kj + 2), t);
            t = _mm256_fmadd_ps(q3, _mm256_broadcast_ss(kj + 3), t);
            __m256 u = _mm256_mul_ps(q4, _mm256_broadcast_ss(kj + 4));
            u = _mm256_fmadd_ps(q5, _mm256_broadcast_ss(kj + 5), u);
            u = _mm256_fmadd_ps(q6, _mm256_broadcast_ss(kj + 6), u);
            u = _mm256_fmadd_ps(q7, _mm256_broadcast_ss(kj + 7), u);
            t = _mm256_add_ps(t, u);
            _mm256_store_ps(sc + 8 * j, t);
            m = _mm256_max_ps(m, t);
        }
        __m256 ml = _mm256_mul_ps(m, _mm256_set1_ps(LOG2E));
        for (long j = 0; j < s; j++)
            _mm256_store_ps(sc + 8 * j, exp2m_256(_mm256_load_ps(sc + 8 * j), ml));
        __m256 l = _mm256_setzero_ps();
        __m256 o0 = l, o1 = l, o2 = l, o3 = l, o4 = l, o5 = l, o6 = l, o7 = l;
        const float *vj = vb + h * HD;
        for (long j = 0; j < s; j++, vj += dm) {
            __m256 p = _mm256_load_ps(sc + 8 * j);
            l = _mm256_add_ps(l, p);
            o0 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 0), o0);
            o1 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 1), o1);
            o2 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 2), o2);
            o3 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 3), o3);
            o4 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 4), o4);
            o5 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 5), o5);
            o6 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 6), o6);
            o7 = _mm256_fmadd_ps(p, _mm256_broadcast_ss(vj + 7), o7);
        }
        __m256 r = _mm256_div_ps(_mm256_set1_ps(1.f), l);
        _mm256_store_ps(ot + 0, _mm256_mul_ps(o0, r));  _mm256_store_ps(ot + 8, _mm256_mul_ps(o1, r));
        _mm256_store_ps(ot + 16, _mm256_mul_ps(o2, r)); _mm256_store_ps(ot + 24, _mm256_mul_ps(o3, r));
        _mm256_store_ps(ot + 32, _mm256_mul_ps(o4, r)); _mm256_store_ps(ot + 40, _mm256_mul_ps(o5, r));
        _mm256_store_ps(ot + 48, _mm256_mul_ps(o6, r)); _mm256_store_ps(ot + 56, _mm256_mul_ps(o7, r));
        scatter_out(ot, 8, ob, i0, s, dm, h);
    }
}
#pragma GCC pop_options

/* 2: AVX-512F, 1: AVX2 + FMA, 0: neither (the caller then uses ONNX Runtime's attention). */
int spectf_attention_isa(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
    return 0;
}

/* q, k, v, out: (n, s, heads*head_dim) float32, C order. isa: 2 or 1 (at most spectf_attention_isa()).
 * Returns 0, or -1 (head_dim is not 8), -2 (workspace too small), -3 (isa not available here). */
int spectf_attention(const float *q, const float *k, const float *v, float *out, long n, long s,
                     long heads, long head_dim, float *work, long work_len, int isa)
{
    if (head_dim != HD || heads < 1 || s < 1 || n < 0)
        return -1;
    if (work_len < spectf_attention_workspace(s))
        return -2;
    if (isa < 1 || isa > spectf_attention_isa())
        return -3;
    long dm = heads * HD, sp = (s + 15) & ~15L;
    float *base = (float *)(((unsigned long)work + 63) & ~63UL);
    float *qt = base, *sc = qt + HD * sp, *ot = sc + 16 * s;
    /* Peaked attention rows give exponentials below 2^-126: as denormals every FMA on them takes a
     * microcode assist (≈ 1.6x slower end to end). Flush them to zero for this call (relative change
     * < 1e-37 of a row sum >= 1), then restore the caller's MXCSR (per thread). */
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ | DAZ */
    /* ot and sc stay 64-byte aligned: HD*sp and 16*s are multiples of 16 floats */
    for (long b = 0; b < n; b++) {
        const float *qb = q + b * s * dm, *kb = k + b * s * dm, *vb = v + b * s * dm;
        float *ob = out + b * s * dm;
        for (long h = 0; h < heads; h++) {
            if (isa == 2)
                head_512(qb, kb, vb, ob, s, dm, h, qt, sp, sc, ot);
            else
                head_256(qb, kb, vb, ob, s, dm, h, qt, sp, sc, ot);
        }
    }
    _mm_setcsr(csr);
    return 0;
}
