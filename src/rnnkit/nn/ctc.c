/* CTC forward-backward in log space, one utterance per OpenMP iteration (see rnnkit/nn/ctc.py).
 *
 * Built by rnnkit.cbuild with -DREAL=float or -DREAL=double. The equations are those of
 * docs/ctc.md and of the NumPy reference rnnkit/reference/ctc.py; the PyTorch loop in
 * rnnkit/nn/ctc.py computes the same numbers and is the fallback when no compiler is found.
 *
 * ctc_forward_backward: for each utterance b,
 *   nll[b]          = -log p(target_b | x_b)                     (inf if no alignment fits)
 *   grad[t, b, k]   = d nll[b] / d log_probs[t, b, k]            (only if grad != NULL;
 *                     zero for t >= input_lengths[b] and where nll[b] is inf)
 * log_probs is (T, B, C) contiguous; targets (B, max_target) int64, padded; grad (T, B, C).
 * Python validates every buffer, length and label before calling (rnnkit.nn.ctc); the entry
 * checks the lengths and labels again and returns -2 without touching anything if one is out of
 * range, -1 when out of memory, 0 on success.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef REAL
#define REAL float
#endif

static inline double lse2(double a, double b) {
    double m = a > b ? a : b;
    if (m == -INFINITY) return -INFINITY;
    return m + log(exp(a - m) + exp(b - m));
}

static inline double lse3(double a, double b, double c) {
    double m = a > b ? a : b;
    m = m > c ? m : c;
    if (m == -INFINITY) return -INFINITY;
    return m + log(exp(a - m) + exp(b - m) + exp(c - m));
}

/* One utterance with probabilities rescaled at every frame (Rabiner 1989; Graves 2012, 7.3.1):
 * alpha and beta are kept as plain numbers divided by their frame's sum, and log p is the sum of
 * the logs of those divisors. No log or exp inside the loops: several times faster than the log
 * space. beta here excludes y_t, so the occupancy of (t, s) is alpha_t(s) * beta_t(s) with no
 * division. Returns 1 when a frame's sum underflows to zero (log-probabilities below about -700,
 * or an impossible alignment); the caller then runs the log-space version. */
static int one_scaled(const REAL *lp, int64_t T, int64_t B, int64_t C, const int64_t *ext,
                      const char *skip, int64_t S, double *alpha, double *beta, REAL *nll,
                      REAL *grad, int64_t b) {
#define Y(t, s) exp((double)lp[((t) * B + b) * C + ext[s]])
    double log_p = 0.0;
    double total = 0.0;
    for (int64_t s = 0; s < S; s++) alpha[s] = s < 2 ? Y(0, s) : 0.0;
    for (int64_t t = 0; t < T; t++) {
        double *cur = alpha + t * S;
        if (t > 0) {
            const double *prev = cur - S;
            for (int64_t s = 0; s < S; s++) {
                double a = prev[s] + (s >= 1 ? prev[s - 1] : 0.0) + (skip[s] ? prev[s - 2] : 0.0);
                cur[s] = a == 0.0 ? 0.0 : a * Y(t, s);
            }
        }
        total = 0.0;
        for (int64_t s = 0; s < S; s++) total += cur[s];
        if (!(total > 0.0)) return 1;
        for (int64_t s = 0; s < S; s++) cur[s] /= total;
        log_p += log(total);
    }
    double end = alpha[(T - 1) * S + S - 1] + (S > 1 ? alpha[(T - 1) * S + S - 2] : 0.0);
    if (!(end > 0.0)) return 1;
    log_p += log(end);
    nll[b] = (REAL)(-log_p);
    if (!grad) return 0;
    double *next = beta, *cur = beta + S;
    for (int64_t s = 0; s < S; s++) next[s] = s >= S - 2 ? 1.0 : 0.0;
    for (int64_t t = T - 1; t >= 0; t--) {
        if (t < T - 1) {
            for (int64_t s = 0; s < S; s++) {
                double v = next[s] * Y(t + 1, s);
                if (s + 1 < S) v += next[s + 1] * Y(t + 1, s + 1);
                if (s + 2 < S && skip[s + 2]) v += next[s + 2] * Y(t + 1, s + 2);
                cur[s] = v;
            }
            double *swap = next; next = cur; cur = swap;  /* next now holds frame t */
        }
        double z = 0.0;
        for (int64_t s = 0; s < S; s++) z += alpha[t * S + s] * next[s];
        if (!(z > 0.0)) return 1;
        double scale = 0.0;
        for (int64_t s = 0; s < S; s++) scale = next[s] > scale ? next[s] : scale;
        REAL *g = grad + (t * B + b) * C;
        for (int64_t s = 0; s < S; s++) g[ext[s]] -= (REAL)(alpha[t * S + s] * next[s] / z);
        for (int64_t s = 0; s < S; s++) next[s] /= scale;  /* keep beta in range */
    }
#undef Y
    return 0;
}

/* One utterance in log space; returns 0, or -1 when out of memory. */
static void one_log(const REAL *lp, int64_t T, int64_t B, int64_t C, const int64_t *ext,
                    const char *skip, int64_t S, double *alpha, double *beta, REAL *nll,
                    REAL *grad, int64_t b) {
#define LP(t, k) ((double)lp[((t) * B + b) * C + (k)])
    /* alpha: equations (3)-(5) */
    for (int64_t s = 0; s < S; s++) alpha[s] = -INFINITY;
    alpha[0] = LP(0, ext[0]);
    if (S > 1) alpha[1] = LP(0, ext[1]);
    for (int64_t t = 1; t < T; t++) {
        const double *prev = alpha + (t - 1) * S;
        double *cur = alpha + t * S;
        for (int64_t s = 0; s < S; s++) {
            double a = prev[s];
            double a1 = s >= 1 ? prev[s - 1] : -INFINITY;
            double a2 = skip[s] ? prev[s - 2] : -INFINITY;
            cur[s] = lse3(a, a1, a2) + LP(t, ext[s]);
        }
    }
    double log_p = S > 1 ? lse2(alpha[(T - 1) * S + S - 1], alpha[(T - 1) * S + S - 2])
                         : alpha[(T - 1) * S];
    nll[b] = (REAL)(-log_p);
    if (grad && log_p != -INFINITY) {
        /* beta: equations (6)-(8) */
        for (int64_t s = 0; s < S; s++) beta[(T - 1) * S + s] = -INFINITY;
        beta[(T - 1) * S + S - 1] = LP(T - 1, ext[S - 1]);
        if (S > 1) beta[(T - 1) * S + S - 2] = LP(T - 1, ext[S - 2]);
        for (int64_t t = T - 2; t >= 0; t--) {
            const double *next = beta + (t + 1) * S;
            double *cur = beta + t * S;
            for (int64_t s = 0; s < S; s++) {
                double a = next[s];
                double a1 = s + 1 < S ? next[s + 1] : -INFINITY;
                double a2 = (s + 2 < S && skip[s + 2]) ? next[s + 2] : -INFINITY;
                cur[s] = lse3(a, a1, a2) + LP(t, ext[s]);
            }
        }
        /* equation (10): grad = -sum_{s: ext[s]=k} exp(alpha + beta - lp - log p) */
        for (int64_t t = 0; t < T; t++) {
            REAL *g = grad + (t * B + b) * C;
            for (int64_t s = 0; s < S; s++) {
                double occ = alpha[t * S + s] + beta[t * S + s];
                if (occ == -INFINITY) continue;
                g[ext[s]] -= (REAL)exp(occ - LP(t, ext[s]) - log_p);
            }
        }
    }
#undef LP
}

/* One utterance: the scaled recursions, or the log-space ones where those underflow.
 * Returns 0, or -1 when out of memory. */
static int one(const REAL *lp, int64_t T, int64_t B, int64_t C, const int64_t *labels, int64_t U,
               int64_t blank, REAL *nll, REAL *grad, int64_t b) {
    const int64_t S = 2 * U + 1;
    int64_t *ext = malloc(sizeof(int64_t) * S);
    char *skip = malloc(S);
    double *alpha = malloc(sizeof(double) * T * S);
    double *beta = grad ? malloc(sizeof(double) * T * S) : NULL;
    if (!ext || !skip || !alpha || (grad && !beta)) {
        free(ext); free(skip); free(alpha); free(beta);
        return -1;
    }
    for (int64_t s = 0; s < S; s++) {
        ext[s] = (s % 2) ? labels[s / 2] : blank;
        skip[s] = s >= 2 && ext[s] != blank && ext[s] != ext[s - 2];
    }
    if (one_scaled(lp, T, B, C, ext, skip, S, alpha, beta, nll, grad, b)) {
        if (grad)
            for (int64_t t = 0; t < T; t++) memset(grad + (t * B + b) * C, 0, sizeof(REAL) * C);
        one_log(lp, T, B, C, ext, skip, S, alpha, beta, nll, grad, b);
    }
    free(ext); free(skip); free(alpha); free(beta);
    return 0;
}

int ctc_forward_backward(const REAL *log_probs, int64_t T, int64_t B, int64_t C,
                         const int64_t *targets, int64_t max_target, const int64_t *input_lengths,
                         const int64_t *target_lengths, int64_t blank, REAL *nll, REAL *grad,
                         int threads) {
    /* Re-check what Python checked: nothing below reads outside the buffers it was given. */
    if (T < 1 || B < 0 || C < 1 || max_target < 0 || blank < 0 || blank >= C) return -2;
    for (int64_t b = 0; b < B; b++) {
        if (input_lengths[b] < 1 || input_lengths[b] > T) return -2;
        if (target_lengths[b] < 0 || target_lengths[b] > max_target) return -2;
        for (int64_t u = 0; u < target_lengths[b]; u++) {
            int64_t k = targets[b * max_target + u];
            if (k < 0 || k >= C || k == blank) return -2;
        }
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic) reduction(| : failed) num_threads(threads)
    for (int64_t b = 0; b < B; b++) {
        failed |= one(log_probs, input_lengths[b], B, C, targets + b * max_target,
                      target_lengths[b], blank, nll, grad, b) != 0;
    }
    return failed ? -1 : 0;
}
