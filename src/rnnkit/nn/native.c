/* rnnkit's recurrence loops in C: the per-step part of the kernels in rnnkit/nn/kernels.py.
 *
 * Python (rnnkit/nn/native.py) does the big matrix products over all N rows with torch (input
 * projection before the loop, weight gradients after it) and calls these functions for the time
 * loop, so that a step costs one BLAS call plus one fused pass over the gates instead of a dozen
 * Python-level tensor operations. Compiled twice: -DREAL=float -DVECTOR_MATH (exp and tanh
 * below, vectorizable) and -DREAL=double -DEXP=exp -DTANH=tanh (libm). The BLAS is the one torch links (its Fortran `sgemm_` /
 * `dgemm_`), passed in as a function pointer.
 *
 * Layout: everything is row-major as in torch. A packed batch has N rows; step t owns rows
 * starts[t] .. starts[t] + sizes[t] (sizes non-increasing); `reverse` walks t from T-1 down to 0.
 * The running states hs (B x P) and cs (B x H) start as h0 / c0 and end as h_n / c_n: step t
 * updates only their first sizes[t] rows, so a finished sequence's state stops changing.
 * Backward walks the steps in the opposite order with running gradients dh (B x P), dc (B x H)
 * that start as dL/dh_n, dL/dc_n and end as dL/dh0, dL/dc0.
 *
 * Memory safety: every buffer's element type, shape and contiguity is checked in Python before the
 * call (rnnkit/nn/native.py, check_buffer), against the same B (batch), N (rows) and widths that
 * are passed here; each entry point checks the schedule against B and N again (steps_setup) and
 * returns nonzero without touching any buffer when they disagree, 2 when out of memory.
 */
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

/* One row of LSTM gate math: g holds the 4H pre-activations (i f g o) and gets the activations. */
static void lstm_gates(int H, real *restrict g, const real *restrict cprev, real *restrict c,
                       real *restrict tc, real *restrict h) {
    for (int j = 0; j < H; j++) {
        const real ig = sigmoid(g[j]), fg = sigmoid(g[H + j]);
        const real cand = TANH(g[2 * H + j]), og = sigmoid(g[3 * H + j]);
        const real cc = fg * cprev[j] + ig * cand, tcc = TANH(cc);
        g[j] = ig, g[H + j] = fg, g[2 * H + j] = cand, g[3 * H + j] = og;
        c[j] = cc, tc[j] = tcc, h[j] = og * tcc;
    }
}

/* Its gradient: dh is dL/dh_t (before the projection), dc the running dL/dc (updated in place
 * to dL/dc_{t-1}); writes the 4H pre-activation gradients dg. */
static void lstm_gates_grad(int H, const real *restrict g, const real *restrict cprev,
                            const real *restrict tc, const real *restrict dh, real *restrict dg,
                            real *restrict dc) {
    for (int j = 0; j < H; j++) {
        const real ig = g[j], fg = g[H + j], cand = g[2 * H + j], og = g[3 * H + j];
        const real tcc = tc[j], dcc = dc[j] + dh[j] * og * (1 - tcc * tcc);
        dg[j] = dcc * cand * ig * (1 - ig);
        dg[H + j] = dcc * cprev[j] * fg * (1 - fg);
        dg[2 * H + j] = dcc * ig * (1 - cand * cand);
        dg[3 * H + j] = dh[j] * tcc * og * (1 - og);
        dc[j] = dcc * fg;
    }
}

/* One row of GRU gate math: gi holds the 3H input pre-activations and gets r z n; gh holds
 * W_hh h_{t-1} and gets b_hh added (bhh may be 0). */
static void gru_gates(int H, real *restrict gi, real *restrict gh, const real *restrict bhh,
                      const real *restrict hprev, real *restrict y) {
    if (bhh)
        for (int j = 0; j < 3 * H; j++) gh[j] += bhh[j];
    for (int j = 0; j < H; j++) {
        const real rg = sigmoid(gi[j] + gh[j]), zg = sigmoid(gi[H + j] + gh[H + j]);
        const real ng = TANH(gi[2 * H + j] + rg * gh[2 * H + j]);
        gi[j] = rg, gi[H + j] = zg, gi[2 * H + j] = ng;
        y[j] = ng + zg * (hprev[j] - ng);
    }
}

/* Its gradient: dh is the running dL/dh (gets the part that flows to h_{t-1} directly, z dh),
 * dy the output gradient; writes the gradients of both projections, dgi and dgh. */
static void gru_gates_grad(int H, const real *restrict gi, const real *restrict gh,
                           const real *restrict hprev, const real *restrict dy,
                           real *restrict dgi, real *restrict dgh, real *restrict dh) {
    for (int j = 0; j < H; j++) {
        const real d = dh[j] + dy[j], r = gi[j], z = gi[H + j], n = gi[2 * H + j];
        const real dn = d * (1 - z) * (1 - n * n);
        const real dr = dn * gh[2 * H + j] * r * (1 - r);
        const real dz = d * (hprev[j] - n) * z * (1 - z);
        dgi[j] = dr, dgi[H + j] = dz, dgi[2 * H + j] = dn;
        dgh[j] = dr, dgh[H + j] = dz, dgh[2 * H + j] = dn * r;
        dh[j] = d * z;
    }
}

/* LSTM forward. g (N x 4H): input projection plus both biases on entry, activations i f g o on
 * exit. Writes hp (N x P) = h_{t-1}, cp (N x H) = c_{t-1}, c, tc = tanh(c), hf (N x H) = h before
 * the projection (only when whr != 0; otherwise y is written directly), y (N x P). */
int lstm_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B, long N,
                 int H, int P, real *g, const real *whh, const real *whr, real *hs, real *cs,
                 real *hp, real *cp, real *c, real *tc, real *hf, real *y) {
    if (steps_setup(T, sizes, starts, B, N, H, P)) return 1;
    weight wh = use_weight('T', 4 * H, P, whh, T, sizes, starts);
    weight wr = use_weight('T', P, H, whr, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        real *h_out = whr ? hf : y;
        for (int i = 0; i < T; i++) {
            MY_STEP(i);
            memcpy(hp + (long)r0 * P, hs + (long)lo * P, sizeof(real) * b * P);
            memcpy(cp + (long)r0 * H, cs + (long)lo * H, sizeof(real) * b * H);
            step_matmul(gemm, &wh, b, hp + (long)r0 * P, 1, g + (long)r0 * 4 * H);
            for (long row = r0; row < r0 + b; row++)
                lstm_gates(H, g + row * 4 * H, cp + row * H, c + row * H, tc + row * H,
                           h_out + row * H);
            if (whr) step_matmul(gemm, &wr, b, hf + (long)r0 * H, 0, y + (long)r0 * P);
            memcpy(hs + (long)lo * P, y + (long)r0 * P, sizeof(real) * b * P);
            memcpy(cs + (long)lo * H, c + (long)r0 * H, sizeof(real) * b * H);
        }
    }
    free(wh.packed), free(wr.packed);
    return 0;
}

/* One row of LSTM inference: g holds the 4H pre-activations without the bias b (may be 0); the
 * cell state c is updated in place and h_t written to y. */
static void lstm_infer_row(int H, const real *restrict g, const real *restrict b,
                           real *restrict c, real *restrict y) {
    for (int j = 0; j < H; j++) {
        const real gi = g[j], gf = g[H + j], gg = g[2 * H + j], go = g[3 * H + j];
        const real ig = sigmoid(b ? gi + b[j] : gi), fg = sigmoid(b ? gf + b[H + j] : gf);
        const real cand = TANH(b ? gg + b[2 * H + j] : gg), og = sigmoid(b ? go + b[3 * H + j] : go);
        const real cc = fg * c[j] + ig * cand;
        c[j] = cc, y[j] = og * TANH(cc);
    }
}

#if defined(OWN_GEMM) && defined(_OPENMP)
/* LSTM inference with the threads splitting the hidden units (float32, packed kernel): thread k
 * owns units j0..j1 (a multiple of 4) of all four gates, so it packs and streams only its share of
 * W_ih and W_hh at each step (a quarter of the traffic of a batch split with two threads), and its
 * products have all the batch's rows. h_{t-1} must be complete before any thread's product: two
 * state buffers alternate (read one, write the other), with one barrier per step. */
static int lstm_infer_units(int T, const int *sizes, const int *starts, int reverse, int H, int I,
                            const float *x, const float *wih, const float *bias,
                            const float *whh, float *hs, float *cs, float *y) {
    /* most: the widest share of gate columns (4 gates x units) a thread can get */
    const int B = sizes[0], n = omp_get_max_threads(), most = 16 * ((H / 4 + n - 1) / n);
    float *spare = malloc(sizeof(float) * (size_t)B * H);
    float *packs = malloc(sizeof(float) * (size_t)n * most * (I + H));
    float *slices = malloc(sizeof(float) * (size_t)n * most * (I > H ? I : H));
    float *gates = malloc(sizeof(float) * (size_t)n * B * most);
    float *biases = malloc(sizeof(float) * (size_t)n * most);
    if (!spare || !packs || !slices || !gates || !biases) {
        free(spare), free(packs), free(slices), free(gates), free(biases);
        return 0;
    }
#pragma omp parallel num_threads(n)
    {
        const int k = omp_get_thread_num(), quarters = H / 4;
        const int j0 = 4 * (int)((long)quarters * k / n), j1 = 4 * (int)((long)quarters * (k + 1) / n);
        const int u = j1 - j0, m = 4 * u;
        float *pi = packs + (long)k * most * (I + H), *ph = pi + (long)most * I;
        float *slice = slices + (long)k * most * (I > H ? I : H), *gt = gates + (long)k * B * most;
        float *bk = bias ? biases + (long)k * most : 0;
        for (int q = 0; q < 4; q++) { /* rows q*H + j0 .. q*H + j1 of each weight, gate by gate */
            memcpy(slice + (long)q * u * I, wih + ((long)q * H + j0) * I, sizeof(float) * u * I);
            if (bk) memcpy(bk + q * u, bias + q * H + j0, sizeof(float) * u);
        }
        for (int p = 0; p < m / NR; p++) pack_panel('T', m, I, slice, pi, p);
        for (int q = 0; q < 4; q++)
            memcpy(slice + (long)q * u * H, whh + ((long)q * H + j0) * H, sizeof(float) * u * H);
        for (int p = 0; p < m / NR; p++) pack_panel('T', m, H, slice, ph, p);
        float *cur = hs, *next = spare;
#pragma omp barrier
        for (int i = 0; i < T; i++) {
            const int t = STEP_T(i), b = sizes[t], r0 = starts[t];
            if (u > 0) {
                packed_matmul(m, b, I, pi, x + (long)r0 * I, 0, gt);
                packed_matmul(m, b, H, ph, cur, 1, gt);
                for (long row = 0; row < b; row++) {
                    float *yr = y + (r0 + row) * H + j0;
                    lstm_infer_row(u, gt + row * m, bk, cs + row * H + j0, yr);
                    memcpy(next + row * H + j0, yr, sizeof(float) * u);
                }
                for (long row = b; row < B; row++) /* finished sequences keep their state */
                    memcpy(next + row * H + j0, cur + row * H + j0, sizeof(float) * u);
            }
            float *swap = cur;
            cur = next, next = swap;
#pragma omp barrier
        }
        if (cur != hs)
            for (long row = 0; row < B; row++)
                memcpy(hs + row * H + j0, cur + row * H + j0, sizeof(float) * u);
    }
    free(spare), free(packs), free(slices), free(gates), free(biases);
    return 1;
}
#endif

/* LSTM inference (no projection): the forward pass when no gradient is wanted, which keeps
 * nothing for backward and never writes the N x 4H gates to memory (52 MB for 100 steps of
 * 64 x 512). Where both weights are packed for rnnkit's kernel, each thread forms its rows' gates
 * step by step, input projection included, in a buffer of its own that stays in its cache.
 * Otherwise the steps run in chunks of at most `chunk` rows whose input projection (one BLAS call
 * on all threads) goes into the scratch g (chunk x 4H) just before the chunk's steps read it. The
 * bias is added in the gate pass, never copied into the gates. hs
 * and cs are the running states (h0, c0 on entry, h_n, c_n on exit); y (N x H) gets every h_t. */
int lstm_infer(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B, long N,
               int H, int I, int chunk, const real *x, const real *wih, const real *bias,
               const real *whh, real *hs, real *cs, real *g, real *y) {
    if (steps_setup(T, sizes, starts, B, N, H, I) || chunk < B) return 1;
#if defined(OWN_GEMM) && defined(_OPENMP)
    const int rows = starts[T - 1] + sizes[T - 1], threads = omp_get_max_threads();
    if (threads > 1 && H % 4 == 0 && H / 4 >= threads && rows >= PACK_MIN_ROWS &&
        lstm_infer_units(T, sizes, starts, reverse, H, I, x, wih, bias, whh, hs, cs, y))
        return 0;
#endif
    weight wh = use_weight('T', 4 * H, H, whh, T, sizes, starts);
    weight wi = use_weight('T', 4 * H, I, wih, T, sizes, starts);
    if (wh.packed && wi.packed) {
        int failed = 0;
        PARALLEL_ROWS {
            int lo, hi;
            my_rows(sizes[0], &lo, &hi);
            real *gt = malloc(sizeof(real) * (size_t)(hi > lo ? hi - lo : 1) * 4 * H);
            if (!gt) {
#pragma omp atomic write
                failed = 1;
            }
            for (int i = 0; gt && i < T; i++) {
                MY_STEP(i);
                step_matmul(gemm, &wi, b, x + (long)r0 * I, 0, gt);
                step_matmul(gemm, &wh, b, hs + (long)lo * H, 1, gt);
                for (long row = 0; row < b; row++) {
                    lstm_infer_row(H, gt + row * 4 * H, bias, cs + (lo + row) * H,
                                   y + (r0 + row) * H);
                    memcpy(hs + (lo + row) * H, y + (r0 + row) * H, sizeof(real) * H);
                }
            }
            free(gt);
        }
        free(wh.packed), free(wi.packed);
        return failed ? 2 : 0;
    }
    free(wi.packed);
    for (int i0 = 0, i1; i0 < T; i0 = i1) {
        int rows = sizes[STEP_T(i0)];
        for (i1 = i0 + 1; i1 < T && rows + sizes[STEP_T(i1)] <= chunk; i1++)
            rows += sizes[STEP_T(i1)];
        const int first = reverse ? STEP_T(i1 - 1) : STEP_T(i0); /* lowest step of the chunk */
        const long base = starts[first];
        matmul(gemm, 'T', 4 * H, rows, I, wih, x + base * I, 0, g);
        PARALLEL_ROWS {
            int lo, hi;
            my_rows(sizes[0], &lo, &hi);
            for (int i = i0; i < i1; i++) {
                MY_STEP(i);
                real *gt = g + (r0 - base) * 4 * H;
                step_matmul(gemm, &wh, b, hs + (long)lo * H, 1, gt);
                for (long row = 0; row < b; row++) {
                    lstm_infer_row(H, gt + row * 4 * H, bias, cs + (lo + row) * H,
                                   y + (r0 + row) * H);
                    memcpy(hs + (lo + row) * H, y + (r0 + row) * H, sizeof(real) * H);
                }
            }
        }
    }
    free(wh.packed);
    return 0;
}

/* LSTM backward. dy (N x P) is dL/dy and is overwritten with the total dL/dh_t (which the
 * projection's weight gradient needs). Writes dg (N x 4H), the gradient of the pre-activations;
 * dhf (B x H) is scratch for the gradient before the projection. */
int lstm_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B, long N,
                  int H, int P, const real *g, const real *cp, const real *tc, const real *whh,
                  const real *whr, real *dy, real *dg, real *dhf, real *dh, real *dc) {
    if (steps_setup(T, sizes, starts, B, N, H, P)) return 1;
    weight wh = use_weight('N', P, 4 * H, whh, T, sizes, starts);
    weight wr = use_weight('N', H, P, whr, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int i = T - 1; i >= 0; i--) {
            MY_STEP(i);
            real *restrict dyt = dy + (long)r0 * P;
            const real *restrict dhl = dh + (long)lo * P;
            for (long k = 0; k < (long)b * P; k++) dyt[k] += dhl[k];
            const real *dht = dyt;
            if (whr) {
                step_matmul(gemm, &wr, b, dyt, 0, dhf + (long)lo * H);
                dht = dhf + (long)lo * H;
            }
            for (long row = 0; row < b; row++) {
                const long n = r0 + row;
                lstm_gates_grad(H, g + n * 4 * H, cp + n * H, tc + n * H, dht + row * H,
                                dg + n * 4 * H, dc + (lo + row) * H);
            }
            step_matmul(gemm, &wh, b, dg + (long)r0 * 4 * H, 0, dh + (long)lo * P);
        }
    }
    free(wh.packed), free(wr.packed);
    return 0;
}

/* GRU forward. gi (N x 3H): input projection plus b_ih on entry, r z n on exit. gh (N x 3H):
 * W_hh h_{t-1} + b_hh (bhh may be 0). hp (N x H) = h_{t-1}. */
int gru_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B, long N,
                int H, real *gi, real *gh, const real *whh, const real *bhh, real *hs, real *hp,
                real *y) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    weight wh = use_weight('T', 3 * H, H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int i = 0; i < T; i++) {
            MY_STEP(i);
            memcpy(hp + (long)r0 * H, hs + (long)lo * H, sizeof(real) * b * H);
            step_matmul(gemm, &wh, b, hp + (long)r0 * H, 0, gh + (long)r0 * 3 * H);
            for (long row = r0; row < r0 + b; row++)
                gru_gates(H, gi + row * 3 * H, gh + row * 3 * H, bhh, hp + row * H, y + row * H);
            memcpy(hs + (long)lo * H, y + (long)r0 * H, sizeof(real) * b * H);
        }
    }
    free(wh.packed);
    return 0;
}

/* GRU backward: writes dgi (N x 3H) and dgh (N x 3H), the gradients of the input and recurrent
 * projections. */
int gru_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B, long N,
                 int H, const real *gi, const real *gh, const real *hp, const real *whh,
                 const real *dy, real *dgi, real *dgh, real *dh) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    weight wh = use_weight('N', H, 3 * H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int i = T - 1; i >= 0; i--) {
            MY_STEP(i);
            for (long row = 0; row < b; row++) {
                const long n = r0 + row;
                gru_gates_grad(H, gi + n * 3 * H, gh + n * 3 * H, hp + n * H, dy + n * H,
                               dgi + n * 3 * H, dgh + n * 3 * H, dh + (lo + row) * H);
            }
            step_matmul(gemm, &wh, b, dgh + (long)r0 * 3 * H, 1, dh + (long)lo * H);
        }
    }
    free(wh.packed);
    return 0;
}

/* Elman RNN forward. y (N x H): input projection plus both biases on entry, h_t on exit. */
int rnn_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B, long N,
                int H, int relu, const real *whh, real *hs, real *hp, real *y) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    weight wh = use_weight('T', H, H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int i = 0; i < T; i++) {
            MY_STEP(i);
            real *restrict yt = y + (long)r0 * H;
            memcpy(hp + (long)r0 * H, hs + (long)lo * H, sizeof(real) * b * H);
            step_matmul(gemm, &wh, b, hp + (long)r0 * H, 1, yt);
            if (relu)
                for (long k = 0; k < (long)b * H; k++) yt[k] = yt[k] > 0 ? yt[k] : 0;
            else
                for (long k = 0; k < (long)b * H; k++) yt[k] = TANH(yt[k]);
            memcpy(hs + (long)lo * H, yt, sizeof(real) * b * H);
        }
    }
    free(wh.packed);
    return 0;
}

/* Elman RNN backward: writes dp (N x H), the gradient of the pre-activations. */
int rnn_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B, long N,
                 int H, int relu, const real *y, const real *whh, const real *dy, real *dp,
                 real *dh) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    weight wh = use_weight('N', H, H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int i = T - 1; i >= 0; i--) {
            MY_STEP(i);
            const real *restrict yt = y + (long)r0 * H, *restrict dyt = dy + (long)r0 * H;
            const real *restrict dhl = dh + (long)lo * H;
            real *restrict dpt = dp + (long)r0 * H;
            if (relu)
                for (long k = 0; k < (long)b * H; k++) dpt[k] = yt[k] > 0 ? dhl[k] + dyt[k] : 0;
            else
                for (long k = 0; k < (long)b * H; k++)
                    dpt[k] = (dhl[k] + dyt[k]) * (1 - yt[k] * yt[k]);
            step_matmul(gemm, &wh, b, dpt, 0, dh + (long)lo * H);
        }
    }
    free(wh.packed);
    return 0;
}
