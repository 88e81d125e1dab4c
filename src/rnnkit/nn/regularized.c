/* The time loops of the layer options in C: the per-step part of the Regularized{LSTM,GRU,RNN}
 * Functions (rnnkit/nn/regularized.py), with layer normalization (of the recurrent product, and of
 * the LSTM's cell), recurrent dropout and zoneout, forward and backward.
 *
 * Python does the products over all N rows with torch (the input side before the loop, the weight
 * and gain gradients after it) and calls these functions for the loop. A step is the plain loops'
 * step (native.c) with the options' element-wise work fused into its passes: the same per-step
 * product with the recurrent weight (rnnkit's packed kernel in float32, else the BLAS torch
 * links), the same threads splitting the batch, the same vectorized exp and tanh — all from
 * loop_kernels.h — plus, per row, the mask on h_{t-1} (folded into the copy of h_{t-1} the weight
 * gradient needs anyway), the normalization's moments and zoneout's mixing in the gate pass.
 * Compiled twice, as native.c: -DREAL=float -DVECTOR_MATH and -DREAL=double with libm.
 *
 * Layout: row-major as in torch. A packed batch has N rows; step t owns rows starts[t] ..
 * starts[t] + sizes[t] (sizes non-increasing); `reverse` walks t from T-1 down to 0. The running
 * states hs, cs (B x H) start as h0, c0 and end as h_n, c_n; step t updates their first sizes[t]
 * rows. Backward walks the steps the other way with running dh, dc (B x H), from dL/dh_n, dL/dc_n
 * to dL/dh0, dL/dc0. Optional buffers are null pointers when their option is off. A thread owns
 * batch rows lo .. hi of every (B x H) buffer (states, mask, scratch) and the same sequences'
 * rows of every (N x ...) buffer, so threads never share a row.
 *
 * Memory safety: Python checks every buffer (rnnkit/nn/native.py, c_arguments) against the B, N
 * and H passed here; each entry point checks the schedule again (steps_setup) and returns 1,
 * touching nothing, when they disagree.
 */
#include <stdint.h>
#include "loop_kernels.h"

#define LN_EPS 1e-5 /* torch.nn.LayerNorm's default, as in regularized.py */

/* Mean and 1/std of x (n values), as torch's layer norm (biased variance), summed in double.
 * The sums are OpenMP simd reductions: the compiler may reorder them into vector lanes. */
static void moments(int n, const real *x, real *mean, real *rstd) {
    double s = 0, v = 0;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < n; j++) s += x[j];
    const double m = s / n;
#pragma omp simd reduction(+ : v)
    for (int j = 0; j < n; j++) v += (x[j] - m) * (x[j] - m);
    *mean = (real)m;
    *rstd = (real)(1 / sqrt(v / n + LN_EPS));
}

/* dL/dx of y = w * (x - mean) * rstd (+ shift), from dy; adds dL/dw (and dL/d(shift)) of this
 * row into gw (gb) when given: this thread's partial sums (see `partials`). */
static void norm_backward(int n, const real *restrict dy, const real *restrict w,
                          const real *restrict x, real mean, real rstd, real *restrict dx,
                          double *restrict gw, double *restrict gb) {
    double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
    for (int j = 0; j < n; j++) {
        const real d = dy[j] * w[j];
        s1 += d;
        s2 += d * (x[j] - mean) * rstd;
    }
    const real m1 = (real)(s1 / n), m2 = (real)(s2 / n);
    for (int j = 0; j < n; j++)
        dx[j] = rstd * (dy[j] * w[j] - m1 - (x[j] - mean) * rstd * m2);
    if (gw)
        for (int j = 0; j < n; j++) gw[j] += dy[j] * ((x[j] - mean) * rstd);
    if (gb)
        for (int j = 0; j < n; j++) gb[j] += dy[j];
}

/* The normalization gains' gradients are sums over all N rows. Each thread adds its rows into a
 * double-precision row of its own; after the parallel region the rows are added up in thread
 * order, so a given number of threads always gives the same sums, and no thread waits. */
typedef struct {
    int width, slots;
    double *sums; /* slots x width, or null when the gradient is not wanted */
} partials;

static int partials_init(partials *p, const real *out, int width, int slots) {
    p->width = width, p->slots = slots;
    p->sums = out ? calloc((size_t)width * slots, sizeof(double)) : 0;
    return out && !p->sums;
}

static double *partials_mine(const partials *p) {
    if (!p->sums) return 0;
#ifdef _OPENMP
    return p->sums + (long)omp_get_thread_num() * p->width;
#else
    return p->sums;
#endif
}

static void partials_finish(partials *p, real *out) {
    if (p->sums)
        for (int j = 0; j < p->width; j++) {
            double s = 0;
            for (int k = 0; k < p->slots; k++) s += p->sums[(long)k * p->width + j];
            out[j] = (real)s;
        }
    free(p->sums);
}

/* The recurrent side of the gates for the b rows of one step, out = W_hh (m * h), normalized
 * (LN_h, gain only) when ln_h is given; the caller adds the rest of the gates. hin receives
 * m * h (kept for the weight gradient), rec_in the raw product, rec_mean and rec_rstd its
 * moments. */
static void recurrent_side(gemm_fn gemm, const weight *w, int b, int H, const real *hs,
                           const real *mask, const real *ln_h, real *hin, real *rec_in,
                           real *rec_mean, real *rec_rstd, real *out) {
    const int G = w->m;
    if (mask)
        for (long k = 0; k < (long)b * H; k++) hin[k] = hs[k] * mask[k];
    else
        memcpy(hin, hs, sizeof(real) * b * H);
    step_matmul(gemm, w, b, hin, 0, ln_h ? rec_in : out);
    if (!ln_h) return;
    for (int i = 0; i < b; i++) {
        const real *x = rec_in + (long)i * G;
        moments(G, x, rec_mean + i, rec_rstd + i);
        const real m = rec_mean[i], s = rec_rstd[i];
        real *o = out + (long)i * G;
        for (int j = 0; j < G; j++) o[j] = ln_h[j] * (x[j] - m) * s;
    }
}

/* dL/dh_{t-1} through the gates' recurrent side, added into dh (b x H): d (b x G) is dL/d of
 * that side; with normalization, d_rec receives dL/d of the raw product and the gain's gradient
 * is added into gain (this thread's partial sums). scratch (b x H) holds the product before the
 * mask. */
static void recurrent_side_backward(gemm_fn gemm, const weight *w, int b, int H, const real *d,
                                    const real *ln_h, const real *rec_in, const real *rec_mean,
                                    const real *rec_rstd, real *d_rec, double *gain,
                                    const real *mask, real *scratch, real *dh) {
    const int G = w->k;
    if (ln_h)
        for (int i = 0; i < b; i++)
            norm_backward(G, d + (long)i * G, ln_h, rec_in + (long)i * G, rec_mean[i],
                          rec_rstd[i], d_rec + (long)i * G, gain, 0);
    if (!mask) {
        step_matmul(gemm, w, b, ln_h ? d_rec : d, 1, dh);
        return;
    }
    step_matmul(gemm, w, b, ln_h ? d_rec : d, 0, scratch);
    for (long k = 0; k < (long)b * H; k++) dh[k] += scratch[k] * mask[k];
}

/* Rows r0.. of an optional (N x width) buffer, and rows lo.. of an optional (B x width) one. */
#define ROWS(p, r0, width) ((p) ? (p) + (long)(r0) * (width) : 0)

/* The per-row passes below are separate functions with restrict pointers, so that the compiler
 * vectorizes them (exp and tanh included); a null option pointer is tested outside the loops. */

/* Zoneout's mix of one element: k prev + (1 - k) fresh (two products, so that k = 1 keeps prev
 * exactly), or fresh without zoneout. The row functions that use it are always inlined (ROW)
 * and called once with k and once with a literal null pointer, so that each copy is compiled
 * for its case, with no test or select per element. */
#define ZONE(k, j, prev, fresh) ((k) ? (k)[j] * (prev) + (1 - (k)[j]) * (fresh) : (fresh))
#define ROW static inline __attribute__((always_inline)) void

/* LSTM gates of one row: x (input side) + gr (recurrent side) -> activations i f g o in gr; the
 * new cell f c_prev + i g into cn and, zoned out with weights k (null: none), into cs. */
ROW lstm_gate_row(int H, const real *restrict x, real *restrict gr,
                          const real *restrict c_prev, const real *restrict k,
                          real *restrict cn, real *restrict cs) {
#pragma GCC ivdep /* no iteration touches another one's elements (gate blocks j, H + j, ...) */
    for (int j = 0; j < H; j++) {
        const real ig = sigmoid(x[j] + gr[j]), fg = sigmoid(x[H + j] + gr[H + j]);
        const real cand = TANH(x[2 * H + j] + gr[2 * H + j]);
        gr[j] = ig, gr[H + j] = fg, gr[2 * H + j] = cand;
        gr[3 * H + j] = sigmoid(x[3 * H + j] + gr[3 * H + j]);
        const real c_new = fg * c_prev[j] + ig * cand;
        cn[j] = c_new, cs[j] = ZONE(k, j, c_prev[j], c_new);
    }
}

/* The new hidden state of one row, o tanh(c^) with c^ = LN_c(cn) when w is given (mean m,
 * 1/std s) and cn otherwise, zoned out with weights k (null: none) into hs (which holds h_{t-1})
 * and y; tc receives tanh(c^). */
ROW lstm_output_row(int H, const real *restrict o, const real *restrict cn,
                            const real *restrict w, const real *restrict shift, real m, real s,
                            const real *restrict k, real *restrict tc, real *restrict hs,
                            real *restrict y) {
    if (w)
        for (int j = 0; j < H; j++) tc[j] = TANH(w[j] * (cn[j] - m) * s + shift[j]);
    else
        for (int j = 0; j < H; j++) tc[j] = TANH(cn[j]);
    for (int j = 0; j < H; j++) {
        const real h = ZONE(k, j, hs[j], o[j] * tc[j]);
        hs[j] = h, y[j] = h;
    }
}

int reg_lstm_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                     long N, int H, const real *gx, const real *whh, const real *ln_h,
                     const real *ln_cw, const real *ln_cb, const real *mask, const real *keep_h,
                     const real *keep_c, real *hs, real *cs, real *hin, real *cp, real *g,
                     real *rec_in, real *rec_mean, real *rec_rstd, real *c_in, real *c_mean,
                     real *c_rstd, real *tc, real *scratch, real *y) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    const int G = 4 * H;
    weight wh = use_weight('T', G, H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int step = 0; step < T; step++) {
            MY_STEP(step);
            memcpy(cp + (long)r0 * H, cs + (long)lo * H, sizeof(real) * b * H);
            recurrent_side(gemm, &wh, b, H, hs + (long)lo * H, ROWS(mask, lo, H), ln_h,
                           hin + (long)r0 * H, ROWS(rec_in, r0, G), ROWS(rec_mean, r0, 1),
                           ROWS(rec_rstd, r0, 1), g + (long)r0 * G);
            for (int i = 0; i < b; i++) {
                const long row = r0 + i, k0 = (long)(lo + i) * H;
                real *gr = g + row * G;
                /* the new cell before zoneout: kept for LN_c's backward, else scratch */
                real *cn = c_in ? c_in + row * H : scratch + k0;
                if (keep_c)
                    lstm_gate_row(H, gx + row * G, gr, cp + row * H, keep_c + row * H, cn, cs + k0);
                else
                    lstm_gate_row(H, gx + row * G, gr, cp + row * H, 0, cn, cs + k0);
                real m = 0, s = 1;
                if (ln_cw) moments(H, cn, c_mean + row, c_rstd + row), m = c_mean[row], s = c_rstd[row];
                if (keep_h)
                    lstm_output_row(H, gr + 3 * H, cn, ln_cw, ln_cb, m, s, keep_h + row * H,
                                    tc + row * H, hs + k0, y + row * H);
                else
                    lstm_output_row(H, gr + 3 * H, cn, ln_cw, ln_cb, m, s, 0, tc + row * H,
                                    hs + k0, y + row * H);
            }
        }
    }
    free(wh.packed);
    return 0;
}

/* Backward through h_t = k h_{t-1} + (1 - k) o tanh(c^) for one row (k = 0 without zoneout):
 * dh, the running dL/dh_t, becomes the direct part k dL/dh_t of dL/dh_{t-1} (the gates' part is
 * added later); dy is the output's gradient. Writes dL/d(o's pre-activation) into dgo and
 * dL/dc^ into dout. */
ROW lstm_output_grad_row(int H, const real *restrict k, const real *restrict dy,
                                 const real *restrict o, const real *restrict tc,
                                 real *restrict dh, real *restrict dgo, real *restrict dout) {
    for (int j = 0; j < H; j++) {
        const real dh_t = dh[j] + dy[j], kh = k ? k[j] : 0, dh_new = dh_t * (1 - kh);
        dh[j] = dh_t * kh;
        dgo[j] = dh_new * tc[j] * o[j] * (1 - o[j]);
        dout[j] = dh_new * o[j] * (1 - tc[j] * tc[j]);
    }
}

/* Backward through c_t = k c_{t-1} + (1 - k) (f c_{t-1} + i g) for one row: dc, the running
 * dL/dc_t, becomes dL/dc_{t-1}; dcn is dL/d(new cell) from the output side. Writes the
 * pre-activation gradients of i, f, g into dg. */
ROW lstm_cell_grad_row(int H, const real *restrict k, const real *restrict gr,
                               const real *restrict c_prev, const real *restrict dcn,
                               real *restrict dg, real *restrict dc) {
    for (int j = 0; j < H; j++) {
        const real kc = k ? k[j] : 0, d = dc[j] * (1 - kc) + dcn[j];
        const real ig = gr[j], fg = gr[H + j], cg = gr[2 * H + j];
        dg[j] = d * cg * ig * (1 - ig);
        dg[H + j] = d * c_prev[j] * fg * (1 - fg);
        dg[2 * H + j] = d * ig * (1 - cg * cg);
        dc[j] = d * fg + dc[j] * kc;
    }
}

/* d_ln_h (G), d_ln_cw, d_ln_cb (H) receive the normalization gains' gradients, summed over all
 * rows (null: not wanted); d_c_out and scratch are B x H scratch. Returns 2 out of memory. */
int reg_lstm_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                      long N, int H, const real *g, const real *cp, const real *tc,
                      const real *whh, const real *ln_h, const real *rec_in,
                      const real *rec_mean, const real *rec_rstd, const real *ln_cw,
                      const real *c_in, const real *c_mean, const real *c_rstd, const real *mask,
                      const real *keep_h, const real *keep_c, const real *dy, real *d_gates,
                      real *d_rec, real *d_c_out, real *scratch, real *dh, real *dc,
                      real *d_ln_h, real *d_ln_cw, real *d_ln_cb) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    const int G = 4 * H, slots = team_size(sizes[0]);
    partials gh, gcw, gcb;
    int failed = partials_init(&gh, d_ln_h, G, slots);
    failed |= partials_init(&gcw, d_ln_cw, H, slots) | partials_init(&gcb, d_ln_cb, H, slots);
    if (failed) {
        free(gh.sums), free(gcw.sums), free(gcb.sums);
        return 2;
    }
    weight wh = use_weight('N', H, G, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        double *my_gh = partials_mine(&gh), *my_gcw = partials_mine(&gcw);
        double *my_gcb = partials_mine(&gcb);
        for (int step = T - 1; step >= 0; step--) {
            MY_STEP(step);
            for (int i = 0; i < b; i++) {
                const long row = r0 + i, k0 = (long)(lo + i) * H;
                const real *gr = g + row * G;
                real *dg = d_gates + row * G;
                real *dcn = scratch + k0; /* dL/d(new cell) from the output side */
                real *dout = ln_cw ? d_c_out + k0 : dcn;
                if (keep_h)
                    lstm_output_grad_row(H, keep_h + row * H, dy + row * H, gr + 3 * H,
                                         tc + row * H, dh + k0, dg + 3 * H, dout);
                else
                    lstm_output_grad_row(H, 0, dy + row * H, gr + 3 * H, tc + row * H, dh + k0,
                                         dg + 3 * H, dout);
                if (ln_cw)
                    norm_backward(H, dout, ln_cw, c_in + row * H, c_mean[row], c_rstd[row], dcn,
                                  my_gcw, my_gcb);
                if (keep_c)
                    lstm_cell_grad_row(H, keep_c + row * H, gr, cp + row * H, dcn, dg, dc + k0);
                else
                    lstm_cell_grad_row(H, 0, gr, cp + row * H, dcn, dg, dc + k0);
            }
            recurrent_side_backward(gemm, &wh, b, H, d_gates + (long)r0 * G, ln_h,
                                    ROWS(rec_in, r0, G), ROWS(rec_mean, r0, 1),
                                    ROWS(rec_rstd, r0, 1), ROWS(d_rec, r0, G), my_gh,
                                    ROWS(mask, lo, H), scratch + (long)lo * H, dh + (long)lo * H);
        }
    }
    free(wh.packed);
    partials_finish(&gh, d_ln_h), partials_finish(&gcw, d_ln_cw), partials_finish(&gcb, d_ln_cb);
    return 0;
}

/* v += bias, one row of n. */
static void add_row(int n, const real *restrict bias, real *restrict v) {
    for (int j = 0; j < n; j++) v[j] += bias[j];
}

/* GRU gates of one row: x (input side), h (recurrent side with b_hh) and h_{t-1} = hp -> r z n
 * in gr, and the new state (1 - z) n + z h_{t-1}, zoned out with weights k (null: none), into
 * hs and y. */
ROW gru_gate_row(int H, const real *restrict x, const real *restrict h,
                         const real *restrict hp, const real *restrict k, real *restrict gr,
                         real *restrict hs, real *restrict y) {
    for (int j = 0; j < H; j++) {
        const real r = sigmoid(x[j] + h[j]), z = sigmoid(x[H + j] + h[H + j]);
        const real n = TANH(x[2 * H + j] + r * h[2 * H + j]);
        gr[j] = r, gr[H + j] = z, gr[2 * H + j] = n;
        const real v = ZONE(k, j, hp[j], n + z * (hp[j] - n));
        hs[j] = v, y[j] = v;
    }
}

int reg_gru_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                    long N, int H, const real *gx, const real *whh, const real *bhh,
                    const real *ln_h, const real *mask, const real *keep_h, real *hs, real *hp,
                    real *hin, real *g, real *gh, real *rec_in, real *rec_mean, real *rec_rstd,
                    real *y) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    const int G = 3 * H;
    weight wh = use_weight('T', G, H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int step = 0; step < T; step++) {
            MY_STEP(step);
            memcpy(hp + (long)r0 * H, hs + (long)lo * H, sizeof(real) * b * H);
            recurrent_side(gemm, &wh, b, H, hs + (long)lo * H, ROWS(mask, lo, H), ln_h,
                           hin + (long)r0 * H, ROWS(rec_in, r0, G), ROWS(rec_mean, r0, 1),
                           ROWS(rec_rstd, r0, 1), gh + (long)r0 * G);
            for (int i = 0; i < b; i++) {
                const long row = r0 + i, k0 = (long)(lo + i) * H;
                real *h = gh + row * G;
                if (bhh) add_row(G, bhh, h);
                if (keep_h)
                    gru_gate_row(H, gx + row * G, h, hp + row * H, keep_h + row * H, g + row * G,
                                 hs + k0, y + row * H);
                else
                    gru_gate_row(H, gx + row * G, h, hp + row * H, 0, g + row * G, hs + k0,
                                 y + row * H);
            }
        }
    }
    free(wh.packed);
    return 0;
}

/* The GRU's gradients for one row: dy the output's gradient, dh the running dL/dh_t (becomes
 * the direct paths to h_{t-1}: k dL/dh_t + (1 - k) z dL/dh~); writes dL/d of the input side
 * (dx) and of the recurrent side (dhh). */
ROW gru_grad_row(int H, const real *restrict k, const real *restrict dy,
                         const real *restrict gr, const real *restrict h, const real *restrict hp,
                         real *restrict dx, real *restrict dhh, real *restrict dh) {
    for (int j = 0; j < H; j++) {
        const real dh_t = dh[j] + dy[j], kh = k ? k[j] : 0, dh_new = dh_t * (1 - kh);
        const real r = gr[j], z = gr[H + j], n = gr[2 * H + j];
        const real dn = dh_new * (1 - z) * (1 - n * n);
        const real dz = dh_new * (hp[j] - n) * z * (1 - z);
        const real dr = dn * h[2 * H + j] * r * (1 - r);
        dx[j] = dhh[j] = dr;
        dx[H + j] = dhh[H + j] = dz;
        dx[2 * H + j] = dn;
        dhh[2 * H + j] = dn * r;
        dh[j] = dh_t * kh + dh_new * z;
    }
}

/* d_ln_h (G) receives the gradient of LN_h's gain summed over all rows (null: not wanted). */
int reg_gru_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                     long N, int H, const real *g, const real *gh, const real *hp,
                     const real *whh, const real *ln_h, const real *rec_in, const real *rec_mean,
                     const real *rec_rstd, const real *mask, const real *keep_h, const real *dy,
                     real *d_gx, real *d_gh, real *d_rec, real *scratch, real *dh,
                     real *d_ln_h) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    const int G = 3 * H;
    partials gain;
    if (partials_init(&gain, d_ln_h, G, team_size(sizes[0]))) return 2;
    weight wh = use_weight('N', H, G, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        double *my_gain = partials_mine(&gain);
        for (int step = T - 1; step >= 0; step--) {
            MY_STEP(step);
            for (int i = 0; i < b; i++) {
                const long row = r0 + i, k0 = (long)(lo + i) * H;
                const real *gr = g + row * G, *h = gh + row * G, *hpr = hp + row * H;
                if (keep_h)
                    gru_grad_row(H, keep_h + row * H, dy + row * H, gr, h, hpr, d_gx + row * G,
                                 d_gh + row * G, dh + k0);
                else
                    gru_grad_row(H, 0, dy + row * H, gr, h, hpr, d_gx + row * G, d_gh + row * G,
                                 dh + k0);
            }
            recurrent_side_backward(gemm, &wh, b, H, d_gh + (long)r0 * G, ln_h,
                                    ROWS(rec_in, r0, G), ROWS(rec_mean, r0, 1),
                                    ROWS(rec_rstd, r0, 1), ROWS(d_rec, r0, G), my_gain,
                                    ROWS(mask, lo, H), scratch + (long)lo * H, dh + (long)lo * H);
        }
    }
    free(wh.packed);
    partials_finish(&gain, d_ln_h);
    return 0;
}

int reg_rnn_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                    long N, int H, int relu, const real *gx, const real *whh, const real *ln_h,
                    const real *mask, const real *keep_h, real *hs, real *hin, real *act,
                    real *rec_in, real *rec_mean, real *rec_rstd, real *y) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    weight wh = use_weight('T', H, H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        for (int step = 0; step < T; step++) {
            MY_STEP(step);
            recurrent_side(gemm, &wh, b, H, hs + (long)lo * H, ROWS(mask, lo, H), ln_h,
                           hin + (long)r0 * H, ROWS(rec_in, r0, H), ROWS(rec_mean, r0, 1),
                           ROWS(rec_rstd, r0, 1), act + (long)r0 * H);
            for (int i = 0; i < b; i++) {
                const long row = r0 + i, k0 = (long)(lo + i) * H;
                const real *x = gx + row * H;
                real *a = act + row * H;
                for (int j = 0; j < H; j++) {
                    const real pre = x[j] + a[j];
                    a[j] = relu ? (pre > 0 ? pre : 0) : TANH(pre);
                    const real kh = keep_h ? keep_h[row * H + j] : 0;
                    hs[k0 + j] = keep_h ? kh * hs[k0 + j] + (1 - kh) * a[j] : a[j];
                    y[row * H + j] = hs[k0 + j];
                }
            }
        }
    }
    free(wh.packed);
    return 0;
}

int reg_rnn_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                     long N, int H, int relu, const real *act, const real *whh, const real *ln_h,
                     const real *rec_in, const real *rec_mean, const real *rec_rstd,
                     const real *mask, const real *keep_h, const real *dy, real *d_pre,
                     real *d_rec, real *scratch, real *dh, real *d_ln_h) {
    if (steps_setup(T, sizes, starts, B, N, H, H)) return 1;
    partials gain;
    if (partials_init(&gain, d_ln_h, H, team_size(sizes[0]))) return 2;
    weight wh = use_weight('N', H, H, whh, T, sizes, starts);
    PARALLEL_ROWS {
        int lo, hi;
        my_rows(sizes[0], &lo, &hi);
        double *my_gain = partials_mine(&gain);
        for (int step = T - 1; step >= 0; step--) {
            MY_STEP(step);
            for (int i = 0; i < b; i++) {
                const long row = r0 + i, k0 = (long)(lo + i) * H;
                for (int j = 0; j < H; j++) {
                    const real dh_t = dh[k0 + j] + dy[row * H + j];
                    const real kh = keep_h ? keep_h[row * H + j] : 0;
                    const real a = act[row * H + j];
                    d_pre[row * H + j] = dh_t * (1 - kh) * (relu ? (a > 0) : 1 - a * a);
                    dh[k0 + j] = dh_t * kh;
                }
            }
            recurrent_side_backward(gemm, &wh, b, H, d_pre + (long)r0 * H, ln_h,
                                    ROWS(rec_in, r0, H), ROWS(rec_mean, r0, 1),
                                    ROWS(rec_rstd, r0, 1), ROWS(d_rec, r0, H), my_gain,
                                    ROWS(mask, lo, H), scratch + (long)lo * H, dh + (long)lo * H);
        }
    }
    free(wh.packed);
    partials_finish(&gain, d_ln_h);
    return 0;
}

/* splitmix64's output function (Steele, Lea & Flood 2014) of state z: a 64-bit random number. */
static inline uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Random masks of the options (weight drop, zoneout, recurrent dropout) on n entries: the
 * factor of entry i is scale with probability threshold / 2^16, else 0; factor[i] receives it
 * when factor is given and, when w is given, out[i] = w[i] * factor (weight drop: a product,
 * not a branch, which would be mispredicted half the time; out may be w itself), and keep[i]
 * (bytes, when given with w) says whether entry i was kept. Weight drop's forward asks for keep
 * where the plain kernels run the layer (masked_weight_grad reads it in backward); otherwise its
 * backward calls this again with the same seed, w = out = dL/d(dropped weight) and no factor:
 * the mask is drawn again rather than kept.
 *
 * The random numbers: draw k is a 32-bit integer hash (Wellons' lowbias32) of the Weyl sequence
 * k * golden + key, the key taken from splitmix64 of the 64-bit seed; each gives two 16-bit
 * uniforms, for the entries k and k + q (q = n / 2 rounded up): two contiguous streams, which
 * the compiler vectorizes with 32-bit multiplies (splitmix64's 64-bit ones are emulated on AVX2;
 * neighbouring entries would need shuffles). That draws the mask of a 2048 x 512 weight about
 * four times as fast as one splitmix64 number per two entries did (weight drop draws one per
 * call); the probability is then a multiple of 2^-16 (Python rounds it). Entries are indexed by
 * position, so the threads' chunks draw the same numbers as one thread would. */
static inline uint32_t draw(uint32_t key, long k) {
    uint32_t x = (uint32_t)k * 0x9E3779B9u + key;
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

/* The factors of draws k in [lo, hi) (each with both its entries below n) into the two
 * streams f and f + stride (entries k and k + q of the mask when stride = q). */
static void draw_factors(long lo, long hi, long stride, uint32_t key, uint32_t threshold,
                         real scale, real *restrict f) {
    real *restrict f1 = f + stride;
    for (long k = lo; k < hi; k++) {
        const uint32_t u = draw(key, k);
        f[k - lo] = scale * ((u & 0xFFFFu) < threshold);
        f1[k - lo] = scale * ((u >> 16) < threshold);
    }
}

/* out = w * mask over draws [lo, hi) (w == out: in place), the factors drawn a block at a time
 * into a buffer that stays in the L1 cache; the product is then a plain vectorized loop. With
 * keep (not null), keep[i] = 1 where entry i is kept and 0 where it is dropped, in the same pass
 * (weight drop's forward: its backward then masks the weight gradient from these bytes, see
 * masked_weight_grad, instead of drawing the mask again). */
#define BLOCK 1024
static void draw_product(long lo, long hi, long q, uint32_t key, uint32_t threshold, real scale,
                         const real *w, real *out, unsigned char *keep) {
    real f[2 * BLOCK];
    for (long k0 = lo; k0 < hi; k0 += BLOCK) {
        const long m = hi - k0 < BLOCK ? hi - k0 : BLOCK;
        draw_factors(k0, k0 + m, BLOCK, key, threshold, scale, f);
        for (int j = 0; j < 2; j++) {
            const real *restrict src = w + k0 + j * q, *restrict fj = f + j * BLOCK;
            real *dst = out + k0 + j * q; /* may be src itself: each entry read, then written */
            for (long i = 0; i < m; i++) dst[i] = src[i] * fj[i];
            if (keep) {
                unsigned char *restrict kj = keep + k0 + j * q;
                for (long i = 0; i < m; i++) kj[i] = fj[i] != 0; /* scale > 0: kept iff nonzero */
            }
        }
    }
}

/* Masks of more entries than this would repeat draws (a 32-bit counter). */
#define MAX_MASK (1L << 33)

int random_mask(long n, uint64_t seed, uint64_t threshold, real scale, const real *w, real *out,
                real *factor, unsigned char *keep) {
    if (n < 0 || n > MAX_MASK || threshold > (1ULL << 16) || (w != 0) != (out != 0) ||
        !(w || factor) || (keep && (!w || factor || !(scale > 0))))
        return 1;
    const long q = (n + 1) / 2, whole = n - q; /* draws with both entries */
    const uint32_t key = (uint32_t)splitmix64(seed), t = (uint32_t)threshold;
#pragma omp parallel if (n >= 1L << 18)
    {
#ifdef _OPENMP
        const long me = omp_get_thread_num(), threads = omp_get_num_threads();
#else
        const long me = 0, threads = 1;
#endif
        const long lo = whole * me / threads, hi = whole * (me + 1) / threads;
        if (factor) draw_factors(lo, hi, q, key, t, scale, factor + lo);
        if (factor && w)
            for (int j = 0; j < 2; j++)
                for (long k = lo + j * q; k < hi + j * q; k++) out[k] = w[k] * factor[k];
        else if (w)
            draw_product(lo, hi, q, key, t, scale, w, out, keep);
    }
    if (n % 2) { /* the last draw: its first entry only */
        const real f = scale * ((draw(key, q - 1) & 0xFFFFu) < t);
        if (factor) factor[q - 1] = f;
        if (w) out[q - 1] = w[q - 1] * f;
        if (keep) keep[q - 1] = f != 0;
    }
    return 0;
}

/* Rows of the weight gradient per block of masked_weight_grad: about 128 KB of float32, which
 * stays in the L2 cache between its product and its mask. */
#define GRAD_BLOCK_BYTES (128 * 1024)
/* Blocks pay while the rows h_{t-1} that every block's product reads again stay in the cache;
 * beyond this size one product over the whole matrix, then the masking pass, is faster. */
#define GRAD_REREAD_BYTES (256 * 1024)

/* out[0 .. n) *= scale * keep[0 .. n): the mask applied to a gradient (a product, not a branch). */
static void mask_bytes(long n, const unsigned char *restrict keep, real scale, real *restrict out) {
    for (long i = 0; i < n; i++) out[i] *= scale * keep[i];
}

/* Weight drop's weight gradient: out (G x P) = scale * keep (.) (dg^T hp), the gradient of the
 * stored weight W when the loop multiplied by W (.) keep * scale. dg (N x G) is the gradient of
 * the per-step products with the dropped weight over all N rows, hp (N x P) the rows h_{t-1} they
 * multiplied, keep (G x P) the bytes random_mask wrote (1 = kept). With few rows (hp within
 * GRAD_REREAD_BYTES: batch 1, short sequences) the product runs on the BLAS a block of rows of out
 * at a time, each block masked right after, while it is still in the cache: one pass over the
 * matrix in memory, where a whole product and then a masking pass (drawing the mask again) made
 * two. With many rows, where each block would read hp and dg again from memory, one product and
 * one masking pass from the bytes (no hashing). Threads take blocks (or stretches of the pass). */
int masked_weight_grad(gemm_fn gemm, long N, int G, int P, const real *dg, const real *hp,
                       const unsigned char *keep, real scale, real *out) {
    if (N < 1 || N > 2147483647L || G < 1 || P < 1 || !dg || !hp || !keep || !out) return 1;
    const int n = (int)N;
    const real one = 1, zero = 0;
    if (N * P * (long)sizeof(real) > GRAD_REREAD_BYTES) {
        /* column-major, as the BLAS sees it: out^T (P x G) = hp^T (P x n) @ dg (n x G) */
        gemm("N", "T", &P, &G, &n, &one, hp, &P, dg, &G, &zero, out, &P);
        const long total = (long)G * P;
#pragma omp parallel if (total >= 1L << 18)
        {
#ifdef _OPENMP
            const long me = omp_get_thread_num(), threads = omp_get_num_threads();
#else
            const long me = 0, threads = 1;
#endif
            const long lo = total * me / threads, hi = total * (me + 1) / threads;
            mask_bytes(hi - lo, keep + lo, scale, out + lo);
        }
        return 0;
    }
    const int rows = GRAD_BLOCK_BYTES / (int)sizeof(real) / P > 0
                         ? GRAD_BLOCK_BYTES / (int)sizeof(real) / P : 1;
    const int blocks = (G + rows - 1) / rows;
#pragma omp parallel for schedule(static) if (blocks > 1 && (long)G * P >= 1L << 16)
    for (int blk = 0; blk < blocks; blk++) {
        const int r0 = blk * rows, m = G - r0 < rows ? G - r0 : rows;
        /* out^T rows r0 .. r0 + m (P x m) = hp^T (P x n) @ dg's columns r0 .. r0 + m (n x m),
         * read transposed from the row-major N x G matrix */
        gemm("N", "T", &P, &m, &n, &one, hp, &P, dg + r0, &G, &zero, out + (long)r0 * P, &P);
        mask_bytes((long)m * P, keep + (long)r0 * P, scale, out + (long)r0 * P);
    }
    return 0;
}
