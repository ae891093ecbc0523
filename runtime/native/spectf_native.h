/* What the two sources of libspectf_attention.so share (not part of its exported interface). */
#ifndef SPECTF_NATIVE_H
#define SPECTF_NATIVE_H

#include <immintrin.h>

#define SPECTF_HIDDEN __attribute__((visibility("hidden")))

long spectf_attention_workspace(long s);
int spectf_attention_isa(void);
/* spectf_attention.c: one head of one spectrum, AVX-512, caller-set FTZ/DAZ */
SPECTF_HIDDEN long spectf_attention_head_avx512(const float *qb, const float *kb, const float *vb, float *ob,
                                                long s, long dm, long h, float *work);

/* 2^t = 2^floor(t) · p(t - floor(t)), p the degree-5 minimax fit of 2^f on [0, 1] (relative error
 * 1.5e-7); 0 once below float32's range (FTZ) */
__attribute__((target("avx512f,avx512dq,fma"))) static inline __m512 spectf_exp2_512(__m512 t)
{
    __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); /* t - floor(t) */
    __m512 p = _mm512_set1_ps(0.0018775470089167356f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.008989321999251842f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.05582642927765846f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24015353620052338f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6931530833244324f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.9999999403953552f));
    return _mm512_scalef_ps(p, t); /* p · 2^floor(t) */
}

#endif
