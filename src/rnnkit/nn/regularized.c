/* The time loops of the layer options in C: the per-step part of the Regularized{LSTM,GRU,RNN}
 * Functions (rnnkit/nn/regularized.py), with layer normalization (of the recurrent product, and of
 * the LSTM's cell), recurrent dropout and zoneout, forward and backward.
 *
 * Python does the products over all N rows with torch (the input side before the loop, the weight
 * and gain gradients after it) and calls these functions for the loop: a step is one BLAS call
 * (torch's own sgemm_/dgemm_, passed in as a function pointer) plus one pass over each row,
 * instead of a dozen PyTorch operations. Compiled twice: -DREAL=float and -DREAL=double, with
 * EXP, TANH and SQRT the libm functions of that type.
 *
 * Layout: row-major as in torch. A packed batch has N rows; step t owns rows starts[t] ..
 * starts[t] + sizes[t] (sizes non-increasing); `reverse` walks t from T-1 down to 0. The running
 * states hs, cs (B x H) start as h0, c0 and end as h_n, c_n; step t updates their first sizes[t]
 * rows. Backward walks the steps the other way with running dh, dc (B x H), from dL/dh_n, dL/dc_n
 * to dL/dh0, dL/dc0. Optional buffers are null pointers when their option is off.
 */
#include <stdlib.h>
#include <string.h>
#include <math.h>

typedef REAL real;
typedef void (*gemm_fn)(const char *, const char *, const int *, const int *, const int *,
                        const real *, const real *, const int *, const real *, const int *,
                        const real *, real *, const int *);

#define LN_EPS 1e-5 /* torch.nn.LayerNorm's default, as in regularized.py */

/* Row-major C (n x m) = beta C + A (n x k) @ op(W), W a row-major torch weight: op(W) = W^T for
 * W (m x k) when wt = 'T', op(W) = W for W (k x m) when wt = 'N'. */
static void matmul(gemm_fn gemm, char wt, int m, int n, int k, const real *w, const real *a,
                   real beta, real *c) {
    const real one = 1;
    const int ldw = wt == 'T' ? k : m;
    const char an = 'N';
    gemm(&wt, &an, &m, &n, &k, &one, w, &ldw, a, &k, &beta, c, &m);
}

static inline real sigmoid(real x) { return 1 / (1 + EXP(-x)); }

/* The schedule must describe exactly N rows of a batch of B: else return 1, touching nothing. */
static int steps_setup(int T, const int *sizes, int *starts, int B, long N, int H) {
    if (T < 1 || B < 1 || H < 1 || sizes[0] != B) return 1;
    long total = 0;
    for (int t = 0; t < T; t++) {
        if (sizes[t] < 1 || (t > 0 && sizes[t] > sizes[t - 1])) return 1;
        starts[t] = (int)total;
        total += sizes[t];
    }
    return total != N;
}

/* Mean and 1/std of x (n values), as torch's layer norm (biased variance). */
static void moments(int n, const real *x, real *mean, real *rstd) {
    double s = 0, v = 0;
    for (int j = 0; j < n; j++) s += x[j];
    const double m = s / n;
    for (int j = 0; j < n; j++) v += (x[j] - m) * (x[j] - m);
    *mean = (real)m;
    *rstd = (real)(1 / SQRT(v / n + LN_EPS));
}

/* dL/dx of y = w * (x - mean) * rstd (+ shift), from dy; dx may alias dy. */
static void norm_backward(int n, const real *dy, const real *w, const real *x, real mean,
                          real rstd, real *dx) {
    double s1 = 0, s2 = 0;
    for (int j = 0; j < n; j++) {
        const real d = dy[j] * w[j];
        s1 += d;
        s2 += d * (x[j] - mean) * rstd;
    }
    const real m1 = (real)(s1 / n), m2 = (real)(s2 / n);
    for (int j = 0; j < n; j++)
        dx[j] = rstd * (dy[j] * w[j] - m1 - (x[j] - mean) * rstd * m2);
}

/* The recurrent side of the gates for the b rows of one step: out = add + LN_h(W_hh (m * h)),
 * or out += W_hh (m * h) without normalization (the caller has put the rest of the gates in out).
 * `add` has rows `add_stride` apart (0: one vector for every row). hin receives m * h, rec_in the
 * raw product, rec_mean and rec_rstd its moments. */
static void recurrent_side(gemm_fn gemm, int b, int H, int G, const real *hs, const real *mask,
                           const real *whh, const real *ln_h, real *hin, real *rec_in,
                           real *rec_mean, real *rec_rstd, const real *add, long add_stride,
                           real *out) {
    for (long k = 0; k < (long)b * H; k++) hin[k] = mask ? hs[k] * mask[k] : hs[k];
    if (!ln_h) {
        matmul(gemm, 'T', G, b, H, whh, hin, 1, out);
        return;
    }
    matmul(gemm, 'T', G, b, H, whh, hin, 0, rec_in);
    for (int i = 0; i < b; i++) {
        const real *x = rec_in + (long)i * G, *a = add + i * add_stride;
        moments(G, x, rec_mean + i, rec_rstd + i);
        const real m = rec_mean[i], s = rec_rstd[i];
        real *o = out + (long)i * G;
        for (int j = 0; j < G; j++) o[j] = a[j] + ln_h[j] * (x[j] - m) * s;
    }
}

/* dL/dh_{t-1} through the gates' recurrent side, added into dh (b x H): d (b x G) is dL/d of
 * that side; with normalization, d_rec receives dL/d of the raw product. */
static void recurrent_side_backward(gemm_fn gemm, int b, int H, int G, const real *d,
                                    const real *whh, const real *ln_h, const real *rec_in,
                                    const real *rec_mean, const real *rec_rstd, real *d_rec,
                                    const real *mask, real *scratch, real *dh) {
    if (ln_h)
        for (int i = 0; i < b; i++)
            norm_backward(G, d + (long)i * G, ln_h, rec_in + (long)i * G, rec_mean[i],
                          rec_rstd[i], d_rec + (long)i * G);
    matmul(gemm, 'N', H, b, G, whh, ln_h ? d_rec : d, 0, scratch);
    for (long k = 0; k < (long)b * H; k++) dh[k] += mask ? scratch[k] * mask[k] : scratch[k];
}

/* Rows r0.. of an optional (N x width) buffer. */
#define ROWS(p, r0, width) ((p) ? (p) + (r0) * (width) : 0)
#define STEP_LOOP(first, last, dir)                                                            \
    for (int step = (first); step != (last); step += (dir))
#define THIS_STEP                                                                              \
    const int t = reverse ? T - 1 - step : step, b = sizes[t];                                 \
    const long r0 = starts[t]

int reg_lstm_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                     long N, int H, const real *gx, const real *whh, const real *ln_h,
                     const real *ln_cw, const real *ln_cb, const real *mask, const real *keep_h,
                     const real *keep_c, real *hs, real *cs, real *hin, real *cp, real *g,
                     real *rec_in, real *rec_mean, real *rec_rstd, real *c_in, real *c_mean,
                     real *c_rstd, real *tc, real *y) {
    if (steps_setup(T, sizes, starts, B, N, H)) return 1;
    const int G = 4 * H;
    STEP_LOOP(0, T, 1) {
        THIS_STEP;
        memcpy(cp + r0 * H, cs, sizeof(real) * b * H);
        memcpy(g + r0 * G, gx + r0 * G, sizeof(real) * b * G);
        recurrent_side(gemm, b, H, G, hs, mask, whh, ln_h, hin + r0 * H, ROWS(rec_in, r0, G),
                       ROWS(rec_mean, r0, 1), ROWS(rec_rstd, r0, 1), gx + r0 * G, G,
                       g + r0 * G);
        for (int i = 0; i < b; i++) {
            const long row = r0 + i;
            real *gr = g + row * G;
            for (int j = 0; j < H; j++) {
                gr[j] = sigmoid(gr[j]);
                gr[H + j] = sigmoid(gr[H + j]);
                gr[2 * H + j] = TANH(gr[2 * H + j]);
                gr[3 * H + j] = sigmoid(gr[3 * H + j]);
            }
            real *cn = c_in ? c_in + row * H : tc + row * H; /* the new cell before zoneout */
            for (int j = 0; j < H; j++) cn[j] = gr[H + j] * cp[row * H + j] + gr[j] * gr[2 * H + j];
            real m = 0, s = 1;
            if (ln_cw) moments(H, cn, c_mean + row, c_rstd + row), m = c_mean[row], s = c_rstd[row];
            for (int j = 0; j < H; j++) {
                const long k = (long)i * H + j;
                const real c_new = cn[j];
                const real c_hat = ln_cw ? ln_cw[j] * (c_new - m) * s + ln_cb[j] : c_new;
                const real tanh_c = TANH(c_hat);
                const real h_new = gr[3 * H + j] * tanh_c;
                tc[row * H + j] = tanh_c;
                const real kc = keep_c ? keep_c[row * H + j] : 0;
                const real kh = keep_h ? keep_h[row * H + j] : 0;
                cs[k] = keep_c ? kc * cs[k] + (1 - kc) * c_new : c_new;
                hs[k] = keep_h ? kh * hs[k] + (1 - kh) * h_new : h_new;
                y[row * H + j] = hs[k];
            }
        }
    }
    return 0;
}

int reg_lstm_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                      long N, int H, const real *g, const real *cp, const real *tc,
                      const real *whh, const real *ln_h, const real *rec_in,
                      const real *rec_mean, const real *rec_rstd, const real *ln_cw,
                      const real *c_in, const real *c_mean, const real *c_rstd, const real *mask,
                      const real *keep_h, const real *keep_c, const real *dy, real *d_gates,
                      real *d_rec, real *d_c_out, real *scratch, real *dh, real *dc) {
    if (steps_setup(T, sizes, starts, B, N, H)) return 1;
    const int G = 4 * H;
    STEP_LOOP(T - 1, -1, -1) {
        THIS_STEP;
        for (int i = 0; i < b; i++) {
            const long row = r0 + i;
            const real *gr = g + row * G;
            real *dg = d_gates + row * G;
            real *dout = d_c_out ? d_c_out + row * H : scratch + (long)i * H;
            for (int j = 0; j < H; j++) { /* through h_t = k h_{t-1} + (1 - k) o tanh(c^) */
                const long k = (long)i * H + j;
                const real dh_t = dh[k] + dy[row * H + j];
                const real kh = keep_h ? keep_h[row * H + j] : 0;
                const real dh_new = dh_t * (1 - kh);
                dh[k] = dh_t * kh; /* the direct path to h_{t-1}; the gates' part comes below */
                const real o = gr[3 * H + j], tcj = tc[row * H + j];
                dg[3 * H + j] = dh_new * tcj * o * (1 - o);
                dout[j] = dh_new * o * (1 - tcj * tcj);
            }
            real *dcn = scratch + (long)i * H; /* dL/d(new cell) from the output side */
            if (ln_cw)
                norm_backward(H, dout, ln_cw, c_in + row * H, c_mean[row], c_rstd[row], dcn);
            for (int j = 0; j < H; j++) {
                const long k = (long)i * H + j;
                const real kc = keep_c ? keep_c[row * H + j] : 0;
                const real d = dc[k] * (1 - kc) + dcn[j];
                const real ig = gr[j], fg = gr[H + j], cg = gr[2 * H + j];
                dg[j] = d * cg * ig * (1 - ig);
                dg[H + j] = d * cp[row * H + j] * fg * (1 - fg);
                dg[2 * H + j] = d * ig * (1 - cg * cg);
                dc[k] = d * fg + dc[k] * kc;
            }
        }
        recurrent_side_backward(gemm, b, H, G, d_gates + r0 * G, whh, ln_h, ROWS(rec_in, r0, G),
                                ROWS(rec_mean, r0, 1), ROWS(rec_rstd, r0, 1),
                                ROWS(d_rec, r0, G), mask, scratch, dh);
    }
    return 0;
}

int reg_gru_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                    long N, int H, const real *gx, const real *whh, const real *bhh,
                    const real *ln_h, const real *mask, const real *keep_h, real *hs, real *hp,
                    real *hin, real *g, real *gh, real *rec_in, real *rec_mean, real *rec_rstd,
                    real *y) {
    if (steps_setup(T, sizes, starts, B, N, H)) return 1;
    const int G = 3 * H;
    real *bias = calloc(G, sizeof(real)); /* b_hh, or zeros */
    if (!bias) return 2;
    if (bhh) memcpy(bias, bhh, sizeof(real) * G);
    STEP_LOOP(0, T, 1) {
        THIS_STEP;
        memcpy(hp + r0 * H, hs, sizeof(real) * b * H);
        for (int i = 0; i < b; i++) memcpy(gh + (r0 + i) * G, bias, sizeof(real) * G);
        recurrent_side(gemm, b, H, G, hs, mask, whh, ln_h, hin + r0 * H, ROWS(rec_in, r0, G),
                       ROWS(rec_mean, r0, 1), ROWS(rec_rstd, r0, 1), bias, 0, gh + r0 * G);
        for (int i = 0; i < b; i++) {
            const long row = r0 + i;
            const real *x = gx + row * G, *h = gh + row * G;
            real *gr = g + row * G;
            for (int j = 0; j < H; j++) {
                const long k = (long)i * H + j;
                const real r = sigmoid(x[j] + h[j]), z = sigmoid(x[H + j] + h[H + j]);
                const real n = TANH(x[2 * H + j] + r * h[2 * H + j]);
                gr[j] = r, gr[H + j] = z, gr[2 * H + j] = n;
                const real h_new = n + z * (hs[k] - n);
                const real kh = keep_h ? keep_h[row * H + j] : 0;
                hs[k] = keep_h ? kh * hs[k] + (1 - kh) * h_new : h_new;
                y[row * H + j] = hs[k];
            }
        }
    }
    free(bias);
    return 0;
}

int reg_gru_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                     long N, int H, const real *g, const real *gh, const real *hp,
                     const real *whh, const real *ln_h, const real *rec_in, const real *rec_mean,
                     const real *rec_rstd, const real *mask, const real *keep_h, const real *dy,
                     real *d_gx, real *d_gh, real *d_rec, real *scratch, real *dh) {
    if (steps_setup(T, sizes, starts, B, N, H)) return 1;
    const int G = 3 * H;
    STEP_LOOP(T - 1, -1, -1) {
        THIS_STEP;
        for (int i = 0; i < b; i++) {
            const long row = r0 + i;
            const real *gr = g + row * G, *h = gh + row * G;
            real *dx = d_gx + row * G, *dhh = d_gh + row * G;
            for (int j = 0; j < H; j++) {
                const long k = (long)i * H + j;
                const real dh_t = dh[k] + dy[row * H + j];
                const real kh = keep_h ? keep_h[row * H + j] : 0;
                const real dh_new = dh_t * (1 - kh);
                const real r = gr[j], z = gr[H + j], n = gr[2 * H + j];
                const real dn = dh_new * (1 - z) * (1 - n * n);
                const real dz = dh_new * (hp[row * H + j] - n) * z * (1 - z);
                const real dr = dn * h[2 * H + j] * r * (1 - r);
                dx[j] = dhh[j] = dr;
                dx[H + j] = dhh[H + j] = dz;
                dx[2 * H + j] = dn;
                dhh[2 * H + j] = dn * r;
                dh[k] = dh_t * kh + dh_new * z; /* the direct paths to h_{t-1} */
            }
        }
        recurrent_side_backward(gemm, b, H, G, d_gh + r0 * G, whh, ln_h, ROWS(rec_in, r0, G),
                                ROWS(rec_mean, r0, 1), ROWS(rec_rstd, r0, 1), ROWS(d_rec, r0, G),
                                mask, scratch, dh);
    }
    return 0;
}

int reg_rnn_forward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                    long N, int H, int relu, const real *gx, const real *whh, const real *ln_h,
                    const real *mask, const real *keep_h, real *hs, real *hin, real *act,
                    real *rec_in, real *rec_mean, real *rec_rstd, real *y) {
    if (steps_setup(T, sizes, starts, B, N, H)) return 1;
    STEP_LOOP(0, T, 1) {
        THIS_STEP;
        memcpy(act + r0 * H, gx + r0 * H, sizeof(real) * b * H);
        recurrent_side(gemm, b, H, H, hs, mask, whh, ln_h, hin + r0 * H, ROWS(rec_in, r0, H),
                       ROWS(rec_mean, r0, 1), ROWS(rec_rstd, r0, 1), gx + r0 * H, H,
                       act + r0 * H);
        for (int i = 0; i < b; i++)
            for (int j = 0; j < H; j++) {
                const long k = (long)i * H + j, row = r0 + i;
                real *a = act + row * H + j;
                *a = relu ? (*a > 0 ? *a : 0) : TANH(*a);
                const real kh = keep_h ? keep_h[row * H + j] : 0;
                hs[k] = keep_h ? kh * hs[k] + (1 - kh) * *a : *a;
                y[row * H + j] = hs[k];
            }
    }
    return 0;
}

int reg_rnn_backward(gemm_fn gemm, int T, const int *sizes, int *starts, int reverse, int B,
                     long N, int H, int relu, const real *act, const real *whh, const real *ln_h,
                     const real *rec_in, const real *rec_mean, const real *rec_rstd,
                     const real *mask, const real *keep_h, const real *dy, real *d_pre,
                     real *d_rec, real *scratch, real *dh) {
    if (steps_setup(T, sizes, starts, B, N, H)) return 1;
    STEP_LOOP(T - 1, -1, -1) {
        THIS_STEP;
        for (int i = 0; i < b; i++)
            for (int j = 0; j < H; j++) {
                const long k = (long)i * H + j, row = r0 + i;
                const real dh_t = dh[k] + dy[row * H + j];
                const real kh = keep_h ? keep_h[row * H + j] : 0;
                const real a = act[row * H + j];
                d_pre[row * H + j] = dh_t * (1 - kh) * (relu ? (a > 0) : 1 - a * a);
                dh[k] = dh_t * kh;
            }
        recurrent_side_backward(gemm, b, H, H, d_pre + r0 * H, whh, ln_h, ROWS(rec_in, r0, H),
                                ROWS(rec_mean, r0, 1), ROWS(rec_rstd, r0, 1), ROWS(d_rec, r0, H),
                                mask, scratch, dh);
    }
    return 0;
}
