/* rnnkit's recurrence loops in C: the per-step part of the kernels in rnnkit/nn/kernels.py.
 *
 * Python (rnnkit/nn/native.py) does the big matrix products over all N rows with torch (input
 * projection before the loop, weight gradients after it) and calls these functions for the time
 * loop, so that a step costs one BLAS call plus one fused pass over the gates instead of a dozen
 * Python-level tensor operations. Compiled twice: -DREAL=float -DVECTOR_MATH (exp and tanh of
 * loop_kernels.h, vectorizable) and -DREAL=double -DEXP=exp -DTANH=tanh (libm). The BLAS is the
 * one torch links (its Fortran `sgemm_` / `dgemm_`), passed in as a function pointer; the
 * per-step products, the threads and the schedule check are loop_kernels.h's.
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
#include "loop_kernels.h"

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
