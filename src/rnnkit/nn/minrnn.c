/* MinGRU and MinLSTM (minrnn.py) on the CPU: the gates, the coefficients and the recurrence
 * h_t = a_t h_{t-1} + (1 - a_t) g(v_t) in one sweep over the input projection, and the backward
 * in one reverse sweep.
 *
 * The input projection pre = W x + b, (T, B, G*H) with the gates (k, v) of MinGRU or (kf, ki, v)
 * of MinLSTM, comes from torch's matrix product. What remains is element-wise: with autograd it
 * was a dozen passes over (T, B, H) tensors plus the parallel scan's levels (scan.py); here the
 * columns (sequence b, hidden unit j) are independent, so each thread takes its share of them
 * and runs the time loop on them, the state in the output row it has just written (in the cache)
 * and every row loop over contiguous units with restrict pointers, which the compiler vectorizes
 * with loop_kernels.h's exp. On a CPU the parallelism over B x H columns is the useful one; a
 * sweep in time does T combines per column where the odd-even scan does about 2T.
 *
 * Coefficients, without cancellation when a gate saturates (1 - a is computed, never formed
 * as a difference):
 *   MinGRU:  a = sigmoid(-k), 1 - a = sigmoid(k), from one exp(-|k|);
 *   MinLSTM: a = f / (f + i) = (1 + e^-ki) / (2 + e^-kf + e^-ki), scaled by e^-s with
 *            s = max(0, -kf, -ki) so that no exp overflows and one term is 1;
 *   g(v) = v + 1/2 for v >= 0, sigmoid(v) below.
 * Backward, with c the gradient flowing back from step t+1 (c = a_{t+1} g_{t+1}) and
 * g_t = dL/dh_t + c:  dL/dv = g_t (1 - a) g'(v);  with D = g_t a (1 - a) (h_{t-1} - g(v)):
 *   MinGRU dL/dk = -D;  MinLSTM dL/dkf = D (1 - f), dL/dki = -D (1 - i);
 * and dL/dh_{-1} = a_0 g_0, the carry left after step 0.
 *
 * Compiled like native.c: -DREAL=float -DVECTOR_MATH or -DREAL=double -DEXP=exp, -fopenmp. */
#include "loop_kernels.h"

enum { MINGRU = 0, MINLSTM = 1 };

/* Hidden units of one sequence that a thread's unit of work covers. */
#define TILE 256
/* Below this many entries (T * B * H) one thread does it all. */
#define PARALLEL_MIN (1L << 15)

#define INLINE static inline __attribute__((always_inline))

/* g(v) and g'(v). */
INLINE real positive(real v, real *slope) {
    const real e = EXP(v < 0 ? v : 0), s = e / (1 + e);
    *slope = v < 0 ? s / (1 + e) : 1;
    return v < 0 ? s : v + (real)0.5;
}

/* a and 1 - a of unit j of a row of gates; for MinLSTM also 1 - f and 1 - i. */
INLINE void coefficients(const int cell, const real *restrict pre, int H, int j, real *a,
                         real *rest, real *not_f, real *not_i) {
    if (cell == MINGRU) {
        const real k = pre[j], e = EXP(-(k < 0 ? -k : k)), r = 1 / (1 + e);
        *a = k < 0 ? r : e * r;
        *rest = k < 0 ? e * r : r;
        *not_f = *not_i = 0;
    } else {
        const real kf = pre[j], ki = pre[H + j];
        const real m = -kf > -ki ? -kf : -ki, s = m > 0 ? m : 0;
        const real es = EXP(-s), ef = EXP(-kf - s), ei = EXP(-ki - s);
        const real na = es + ei, nb = es + ef, inv = 1 / (na + nb);
        *a = na * inv;
        *rest = nb * inv;
        *not_f = ef / nb;
        *not_i = ei / na;
    }
}

/* h = a h_prev + (1 - a) g(v) over n units of one row. */
INLINE void forward_row(const int cell, int n, int H, const real *restrict pre,
                        const real *restrict prev, real *restrict h) {
    const real *restrict v = pre + (cell == MINGRU ? 1 : 2) * (long)H;
    for (int j = 0; j < n; j++) {
        real a, rest, not_f, not_i, slope;
        coefficients(cell, pre, H, j, &a, &rest, &not_f, &not_i);
        h[j] = a * prev[j] + rest * positive(v[j], &slope);
    }
}

/* One step back over n units of one row: d_pre from g = dh + carry; carry becomes a g. */
INLINE void backward_row(const int cell, int n, int H, const real *restrict pre,
                         const real *restrict prev, const real *restrict dh,
                         real *restrict carry, real *restrict d_pre) {
    const real *restrict v = pre + (cell == MINGRU ? 1 : 2) * (long)H;
    real *restrict dv = d_pre + (cell == MINGRU ? 1 : 2) * (long)H;
    real *restrict d_ki = d_pre + H;
    for (int j = 0; j < n; j++) {
        real a, rest, not_f, not_i, slope;
        coefficients(cell, pre, H, j, &a, &rest, &not_f, &not_i);
        const real g = dh[j] + carry[j], cand = positive(v[j], &slope);
        const real d = g * a * rest * (prev[j] - cand);
        if (cell == MINGRU) {
            d_pre[j] = -d;
        } else {
            d_pre[j] = d * not_f;
            d_ki[j] = -d * not_i;
        }
        dv[j] = g * rest * slope;
        carry[j] = a * g;
    }
}

/* A call's sizes and buffers (h0 and dh0, h and dh: forward's and backward's). */
typedef struct {
    int T, B, H;
    const real *pre, *h0, *h, *dh;
    real *out, *d_pre; /* forward: h; backward: the carry, which ends as dh0 */
} sweep;

/* The row of unit j0 of sequence b at step t, in a buffer of `width` units per row. */
#define ROW(buf, t, b, j0, width) ((buf) + ((long)(t) * s->B + (b)) * (width) + (j0))
#define PREV(t, b, j0) ((t) ? ROW(s->h, (t) - 1, b, j0, s->H) : s->h0 + (long)(b) * s->H + (j0))

/* Tiles [lo, hi) (a tile: up to TILE units of one sequence) through every step, time-major so
 * that at each step the thread's rows are one stretch of memory. `cell` is a literal in each
 * caller (the sweeps below are separate functions, not OpenMP's outlined region, so that the
 * compiler builds and vectorizes one copy per cell). */
#define TILES_OF(k)                                                                             \
    const int per_row = (s->H + TILE - 1) / TILE, b = (int)((k) / per_row),                     \
              j0 = (int)((k) % per_row) * TILE, n = s->H - j0 < TILE ? s->H - j0 : TILE

INLINE void forward_tiles(const int cell, const sweep *s, long lo, long hi) {
    const int G = cell == MINGRU ? 2 : 3;
    for (int t = 0; t < s->T; t++)
        for (long k = lo; k < hi; k++) {
            TILES_OF(k);
            forward_row(cell, n, s->H, ROW(s->pre, t, b, j0, G * s->H), PREV(t, b, j0),
                        ROW(s->out, t, b, j0, s->H));
        }
}

INLINE void backward_tiles(const int cell, const sweep *s, long lo, long hi) {
    const int G = cell == MINGRU ? 2 : 3;
    for (long k = lo; k < hi; k++) {
        TILES_OF(k);
        memset(s->out + (long)b * s->H + j0, 0, sizeof(real) * n);
    }
    for (int t = s->T - 1; t >= 0; t--)
        for (long k = lo; k < hi; k++) {
            TILES_OF(k);
            backward_row(cell, n, s->H, ROW(s->pre, t, b, j0, G * s->H), PREV(t, b, j0),
                         ROW(s->dh, t, b, j0, s->H), s->out + (long)b * s->H + j0,
                         ROW(s->d_pre, t, b, j0, G * s->H));
        }
}

typedef void (*tiles_fn)(const sweep *, long, long);
static void forward_mingru(const sweep *s, long lo, long hi) { forward_tiles(MINGRU, s, lo, hi); }
static void forward_minlstm(const sweep *s, long lo, long hi) { forward_tiles(MINLSTM, s, lo, hi); }
static void backward_mingru(const sweep *s, long lo, long hi) { backward_tiles(MINGRU, s, lo, hi); }
static void backward_minlstm(const sweep *s, long lo, long hi) {
    backward_tiles(MINLSTM, s, lo, hi);
}

/* Threads split the tiles; each runs the whole time loop on its own (no barrier per step). */
static int run(tiles_fn fn, const sweep *s) {
    if (s->T < 1 || s->B < 1 || s->H < 1) return 1;
    const long tiles = (long)s->B * ((s->H + TILE - 1) / TILE);
#pragma omp parallel if ((long)s->T * s->B * s->H >= PARALLEL_MIN)
    {
#ifdef _OPENMP
        const long k = omp_get_thread_num(), threads = omp_get_num_threads();
#else
        const long k = 0, threads = 1;
#endif
        fn(s, tiles * k / threads, tiles * (k + 1) / threads);
    }
    return 0;
}

/* h (T, B, H) from pre (T, B, G*H) and h0 (B, H); cell 0: MinGRU (G = 2), 1: MinLSTM (G = 3).
 * Nonzero, nothing written, for sizes it cannot take. Python checks every buffer's size. */
int min_forward(int cell, int T, int B, int H, const real *pre, const real *h0, real *h) {
    const sweep s = {T, B, H, pre, h0, h, 0, h, 0}; /* reads back the rows it wrote */
    if (cell != MINGRU && cell != MINLSTM) return 1;
    return run(cell == MINGRU ? forward_mingru : forward_minlstm, &s);
}

/* d_pre (T, B, G*H) and dh0 (B, H) from the forward's pre, h0, h and dh = dL/dh (T, B, H). */
int min_backward(int cell, int T, int B, int H, const real *pre, const real *h0, const real *h,
                 const real *dh, real *d_pre, real *dh0) {
    const sweep s = {T, B, H, pre, h0, h, dh, dh0, d_pre};
    if (cell != MINGRU && cell != MINLSTM) return 1;
    return run(cell == MINGRU ? backward_mingru : backward_minlstm, &s);
}
