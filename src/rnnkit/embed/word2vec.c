/* word2vec's training loops in C (the PyTorch steps of rnnkit/embed/train.py are the fallback).
 *
 * Python (rnnkit/embed/native.py) subsamples the corpus, cuts it into chunks of centre
 * words and draws each centre's window half-width and negatives from a seeded torch generator;
 * one call here trains on one chunk, centre by centre in corpus order, updating the float32
 * row-major matrices w_in (V x dim) and w_out (V x dim) in place. Two Python threads call these
 * functions at once on different chunks without locks ("Hogwild", as word2vec.c and gensim do);
 * ctypes releases the GIL for the call. Both loops are word2vec.c's sequential SGD exactly.
 *
 * Arguments shared by both functions:
 *   seq, owner: the subsampled corpus (word ids) and each token's sentence number, length n;
 *   [start, stop): the centre positions of this chunk;
 *   width[i - start]: centre i's window half-width b in 1..window; its context is positions
 *     i-b .. i+b except i, inside the corpus and in the same sentence, in corpus order;
 *   negatives: k negatives per prediction (layout: see each function); a negative equal to the
 *     centre word is skipped, as in word2vec.c;
 *   lr: the step size. g = lr * (label - sigmoid(score)) is the gradient of log sigmoid(+-score).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline float dot(const float *restrict a, const float *restrict b, int64_t n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* y += a * x */
static inline void axpy(float a, const float *restrict x, float *restrict y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* The word ids of centre i's context, in corpus order; returns how many. */
static int64_t context(const int64_t *seq, const int64_t *owner, int64_t n, int64_t i, int64_t b,
                       int64_t *ctx) {
    int64_t count = 0;
    const int64_t lo = i - b < 0 ? 0 : i - b, hi = i + b >= n ? n - 1 : i + b;
    for (int64_t j = lo; j <= hi; j++)
        if (j != i && owner[j] == owner[i]) ctx[count++] = seq[j];
    return count;
}

/* One prediction of word2vec's negative sampling: the hidden vector h against the centre word
 * (label 1), then each of the k negatives neg[0..k-1] (label 0) that is not the centre, in turn:
 * g from h . w_out[t], grad_h += g * w_out[t], then w_out[t] += g * h at once. h is not
 * changed; the caller applies grad_h. */
static void predict(const float *restrict h, float *restrict w_out, int64_t dim, int64_t centre,
                    const int64_t *neg, int64_t k, float lr, float *restrict grad_h) {
    for (int64_t j = -1; j < k; j++) {
        const int64_t t = j < 0 ? centre : neg[j];
        if (j >= 0 && t == centre) continue;
        float *u = w_out + t * dim;
        const float g = ((j < 0 ? 1.0f : 0.0f) - sigmoid(dot(h, u, dim))) * lr;
        axpy(g, u, grad_h, dim);
        axpy(g, h, u, dim);
    }
}

/* The sizes one call trusts (Python checks the buffers against them, and every word id in the
 * ranges read: rnnkit/embed/native.py); -2 from the entry points when they do not hold. */
static int sizes_ok(int64_t dim, int64_t n, int64_t start, int64_t stop, int64_t k,
                    int64_t window) {
    return dim >= 1 && k >= 0 && window >= 1 && 0 <= start && start <= stop && stop <= n;
}

/* CBOW (cbow_mean=1), exactly word2vec.c's loop: h is the mean of the context's input vectors;
 * the centre word (label 1) and each negative (label 0) in turn: g from h . w_out[t], the
 * gradient of h gathers g * w_out[t], then w_out[t] += g * h; finally the whole gradient of h is
 * added to every context word's input vector. negatives[(i - start) * k + j]: centre i's j-th
 * negative. Returns 0, -1 if out of memory, -2 for sizes it cannot trust. */
int cbow_chunk(float *w_in, float *w_out, int64_t dim, const int64_t *seq, const int64_t *owner,
               int64_t n, int64_t start, int64_t stop, const int64_t *width,
               const int64_t *negatives, int64_t k, int64_t window, float lr) {
    if (!sizes_ok(dim, n, start, stop, k, window)) return -2;
    float *h = malloc(2 * dim * sizeof(float));
    int64_t *ctx = malloc(2 * window * sizeof(int64_t));
    if (h == NULL || ctx == NULL) {
        free(h), free(ctx);
        return -1;
    }
    float *grad_h = h + dim;
    for (int64_t i = start; i < stop; i++) {
        const int64_t c = context(seq, owner, n, i, width[i - start], ctx);
        if (c == 0) continue;
        memset(h, 0, dim * sizeof(float));
        memset(grad_h, 0, dim * sizeof(float));
        for (int64_t a = 0; a < c; a++) axpy(1.0f, w_in + ctx[a] * dim, h, dim);
        for (int64_t d = 0; d < dim; d++) h[d] /= (float)c;
        predict(h, w_out, dim, seq[i], negatives + (i - start) * k, k, lr, grad_h);
        for (int64_t a = 0; a < c; a++) axpy(1.0f, grad_h, w_in + ctx[a] * dim, dim);
    }
    free(h), free(ctx);
    return 0;
}

/* Skip-gram, exactly word2vec.c's loop (and gensim's): for each context word of centre i in
 * corpus order, one prediction: its input vector v predicts the centre word against that pair's
 * own k negatives, negatives[((i - start) * 2 * window + a) * k + j] for the a-th context word
 * (slots a >= the context's size are unused); the output rows change at once, target by target,
 * and v += the pair's gathered gradient at the end of the pair, before the next pair. Returns 0,
 * -1 if out of memory, -2 for sizes it cannot trust. */
int sgns_chunk(float *w_in, float *w_out, int64_t dim, const int64_t *seq, const int64_t *owner,
               int64_t n, int64_t start, int64_t stop, const int64_t *width,
               const int64_t *negatives, int64_t k, int64_t window, float lr) {
    if (!sizes_ok(dim, n, start, stop, k, window)) return -2;
    float *grad = malloc(dim * sizeof(float));
    int64_t *ctx = malloc(2 * window * sizeof(int64_t));
    if (grad == NULL || ctx == NULL) {
        free(grad), free(ctx);
        return -1;
    }
    for (int64_t i = start; i < stop; i++) {
        const int64_t c = context(seq, owner, n, i, width[i - start], ctx);
        const int64_t *neg = negatives + (i - start) * 2 * window * k;
        for (int64_t a = 0; a < c; a++) {
            float *v = w_in + ctx[a] * dim;
            memset(grad, 0, dim * sizeof(float));
            predict(v, w_out, dim, seq[i], neg + a * k, k, lr, grad);
            axpy(1.0f, grad, v, dim);
        }
    }
    free(grad), free(ctx);
    return 0;
}
