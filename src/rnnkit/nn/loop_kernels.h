/* What rnnkit's C time loops share (native.c, the plain layers; regularized.c, the layer options):
 * the per-step matrix product with a recurrent weight (rnnkit's packed kernel, or the BLAS torch
 * links), exp and tanh that the compiler vectorizes, the check of the schedule, and the split of
 * the batch across threads. Every function is static: each loop library gets its own copy.
 *
 * The including file is compiled with -DREAL=float -DVECTOR_MATH (exp and tanh below) or
 * -DREAL=double -DEXP=exp -DTANH=tanh (libm), and -fopenmp where the compiler has it.
 */
#ifndef RNNKIT_LOOP_KERNELS_H
#define RNNKIT_LOOP_KERNELS_H

#include <stdlib.h>
#include <string.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(VECTOR_MATH) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define OWN_GEMM 1
#endif

typedef REAL real;
typedef void (*gemm_fn)(const char *, const char *, const int *, const int *, const int *,
                        const real *, const real *, const int *, const real *, const int *,
                        const real *, real *, const int *);

/* Row-major C (n x m) = beta C + A (n x k) @ op(W), where W is a row-major torch weight:
 * op(W) = W^T for W (m x k) when wt = 'T', and op(W) = W for W (k x m) when wt = 'N'. */
static void matmul(gemm_fn gemm, char wt, int m, int n, int k, const real *w, const real *a,
                   real beta, real *c) {
    const real one = 1;
    const int ldw = wt == 'T' ? k : m;
    const char an = 'N';
    gemm(&wt, &an, &m, &n, &k, &one, w, &ldw, a, &k, &beta, c, &m);
}

/* float32 on AVX2/FMA processors: the per-step products with a recurrent weight run on rnnkit's
 * own small matrix-product kernel rather than the BLAS. The weight is copied once per call into
 * panels of 16 columns (`pack_weight`), which every step then streams through a 6 x 16 register
 * tile (12 accumulators, 12 FMAs per 8 loads); the BLAS would re-pack the weight at every step,
 * and the one torch links reaches 60-70% of this processor's peak on these shapes where this tile
 * reaches about 90% (benchmarks/README.md). Everything else, and float64, uses the BLAS. */
#ifdef OWN_GEMM
#define NR 16  /* columns of a panel (two 8-float vectors) */
#define KC 256 /* depth of a block: a panel block (16 KB) stays in the L1 cache across rows */

/* op(W) as k x m panels: panel p holds columns p*NR .. p*NR+NR-1, one row of NR per depth index.
 * W is a row-major torch weight: m x k when wt = 'T' (op(W) = W^T), k x m when wt = 'N'. */
static void pack_panel(char wt, int m, int k, const float *w, float *dst, int p) {
    float *d = dst + (long)p * k * NR;
    if (wt == 'T')
        for (int col = 0; col < NR; col++) {
            const float *src = w + (long)(p * NR + col) * k;
            for (int kk = 0; kk < k; kk++) d[kk * NR + col] = src[kk];
        }
    else
        for (int kk = 0; kk < k; kk++)
            memcpy(d + kk * NR, w + (long)kk * m + p * NR, sizeof(float) * NR);
}

static float *pack_weight(char wt, int m, int k, const float *w) {
    if (m % NR) return 0;
    float *dst = malloc(sizeof(float) * (size_t)m * k);
    if (dst) {
#pragma omp parallel for schedule(static) if ((long)m * k >= 1 << 16)
        for (int p = 0; p < m / NR; p++) pack_panel(wt, m, k, w, dst, p);
    }
    return dst;
}

/* C (MR x 16, ldc) = (acc ? C : 0) + A (MR x kc, lda) @ B (kc x 16, a block of one panel). */
static inline __attribute__((always_inline)) void tile(const int MR, int kc, const float *a,
                                                       int lda, const float *b, float *c, int ldc,
                                                       int acc) {
    __m256 lo[6], hi[6];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) lo[i] = _mm256_setzero_ps(), hi[i] = _mm256_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        const __m256 b0 = _mm256_loadu_ps(b + kk * NR), b1 = _mm256_loadu_ps(b + kk * NR + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + (long)i * lda + kk);
            lo[i] = _mm256_fmadd_ps(ai, b0, lo[i]);
            hi[i] = _mm256_fmadd_ps(ai, b1, hi[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        float *ci = c + (long)i * ldc;
        if (acc) {
            lo[i] = _mm256_add_ps(lo[i], _mm256_loadu_ps(ci));
            hi[i] = _mm256_add_ps(hi[i], _mm256_loadu_ps(ci + 8));
        }
        _mm256_storeu_ps(ci, lo[i]);
        _mm256_storeu_ps(ci + 8, hi[i]);
    }
}

/* Row-major C (n x m) = beta C + A (n x k) @ op(W), op(W) packed by pack_weight; beta is 0 or 1. */
static void packed_matmul(int m, int n, int k, const float *pw, const float *a, float beta,
                          float *c) {
    for (int k0 = 0; k0 < k; k0 += KC) {
        const int kc = k - k0 < KC ? k - k0 : KC, acc = beta != 0 || k0 > 0;
        for (int p = 0; p < m / NR; p++) {
            const float *b = pw + (long)p * k * NR + (long)k0 * NR;
            int r = 0;
            for (; r + 6 <= n; r += 6)
                tile(6, kc, a + (long)r * k + k0, k, b, c + (long)r * m + p * NR, m, acc);
            const float *ar = a + (long)r * k + k0;
            float *cr = c + (long)r * m + p * NR;
            switch (n - r) { /* the last rows: a tile of as many rows, unrolled by the compiler */
            case 5: tile(5, kc, ar, k, b, cr, m, acc); break;
            case 4: tile(4, kc, ar, k, b, cr, m, acc); break;
            case 3: tile(3, kc, ar, k, b, cr, m, acc); break;
            case 2: tile(2, kc, ar, k, b, cr, m, acc); break;
            case 1: tile(1, kc, ar, k, b, cr, m, acc); break;
            }
        }
    }
}
#else
static real *pack_weight(char wt, int m, int k, const real *w) {
    (void)wt, (void)m, (void)k, (void)w;
    return 0;
}
static void packed_matmul(int m, int n, int k, const real *pw, const real *a, real beta,
                          real *c) {
    (void)m, (void)n, (void)k, (void)pw, (void)a, (void)beta, (void)c;
}
#endif

/* A recurrent weight as the steps use it: packed for rnnkit's kernel where that pays, i.e. when
 * the steps have enough rows in all to amortise the copy (not for one-token generation steps). */
typedef struct {
    char wt;
    int m, k;
    const real *w;
    real *packed;
} weight;

#define PACK_MIN_ROWS 64

static weight use_weight(char wt, int m, int k, const real *w, int T, const int *sizes,
                         const int *starts) {
    const int rows = starts[T - 1] + sizes[T - 1];
    weight r = {wt, m, k, w, w && rows >= PACK_MIN_ROWS ? pack_weight(wt, m, k, w) : 0};
    return r;
}

/* Row-major C (n x W.m) = beta C + A (n x W.k) @ op(W). */
static void step_matmul(gemm_fn gemm, const weight *w, int n, const real *a, real beta, real *c) {
    if (w->packed)
        packed_matmul(w->m, n, w->k, w->packed, a, beta, c);
    else
        matmul(gemm, w->wt, w->m, n, w->k, w->w, a, beta, c);
}

#ifdef VECTOR_MATH
/* float32: exp and tanh from arithmetic only (Cephes' polynomials, about 1 ulp), so that the
 * compiler vectorizes the gate loops without -ffast-math or a vector math library. */
typedef union { float f; int i; } bits32;

static inline float exp_f32(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float n = (x * 1.44269504088896341f + magic) - magic;
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    bits32 scale;
    scale.i = ((int)n + 127) << 23;
    return p * scale.f;
}

static inline float tanh_f32(float x) {
    const float z = x * x;
    float small = -5.70498872745e-3f; /* |x| < 0.625: odd polynomial */
    small = small * z + 2.06390887954e-2f;
    small = small * z - 5.37397155531e-2f;
    small = small * z + 1.33314422036e-1f;
    small = small * z - 3.33332819422e-1f;
    small = small * z * x + x;
    const float large = 1.0f - 2.0f / (exp_f32(2.0f * x) + 1.0f);
    return z < 0.390625f ? small : large;
}
#define EXP exp_f32
#define TANH tanh_f32
#endif

static inline real sigmoid(real x) { return 1 / (1 + EXP(-x)); }

/* The schedule's row offsets; nonzero (and nothing touched) unless the schedule is one the loops
 * can trust: T >= 1 steps of 1 .. B rows, never increasing, N rows in all, and the widths H and P
 * of the buffers positive. Python validates every buffer against the same numbers. */
static int steps_setup(int T, const int *sizes, int *starts, int B, long N, int H, int P) {
    if (T < 1 || B < 1 || H < 1 || P < 1 || sizes[0] != B) return 1;
    long total = 0;
    for (int t = 0; t < T; t++) {
        if (sizes[t] < 1 || (t > 0 && sizes[t] > sizes[t - 1])) return 1;
        starts[t] = (int)total;
        total += sizes[t];
    }
    return total != N;
}

#define STEP_T(i) (reverse ? T - 1 - (i) : (i))

/* Threads split the batch: one sequence's recurrence never reads another's, so each thread runs
 * the whole time loop on its own rows [lo, hi) with single-threaded BLAS calls, and the threads
 * never wait for each other (one parallel region per sequence instead of a barrier per step). */
#define MIN_ROWS_PER_THREAD 4

static int team_size(int batch) {
#ifdef _OPENMP
    const int threads = omp_get_max_threads(), by_rows = batch / MIN_ROWS_PER_THREAD;
    return threads < by_rows ? threads : (by_rows > 1 ? by_rows : 1);
#else
    (void)batch;
    return 1;
#endif
}

static void my_rows(int batch, int *lo, int *hi) {
#ifdef _OPENMP
    const int k = omp_get_thread_num(), n = omp_get_num_threads();
#else
    const int k = 0, n = 1;
#endif
    *lo = (int)((long)batch * k / n);
    *hi = (int)((long)batch * (k + 1) / n);
}

/* Inside the time loop: this thread's rows at step t are r0 .. r0 + b (b <= 0: none). */
#define MY_STEP(i)                                                                              \
    const int t = STEP_T(i), b = (sizes[t] < hi ? sizes[t] : hi) - lo, r0 = starts[t] + lo;     \
    if (b <= 0) continue

#define PARALLEL_ROWS _Pragma("omp parallel num_threads(team_size(sizes[0]))")

#endif /* RNNKIT_LOOP_KERNELS_H */
