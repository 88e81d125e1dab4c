"""Train word vectors: skip-gram and CBOW with negative sampling (Mikolov et al. 2013).

The recipe is word2vec's, step for step:

* words seen fewer than ``min_count`` times are dropped before anything else;
* each epoch, an occurrence of a word with corpus frequency ``f`` (count / total) is kept with
  probability ``(sqrt(f / sample) + 1) * sample / f`` (capped at 1), the formula of word2vec's C
  code and gensim; discarded words are removed before windows are formed, so windows reach further;
* each centre word gets its own window half-width ``b``, uniform in ``1..window`` ("shrinking"
  windows weight near context words more); windows never cross a sentence boundary;
* negatives are drawn from the unigram distribution raised to ``3/4``; a negative that is the
  centre word itself is skipped;
* CBOW predicts the centre word from the mean of its context's input vectors (gensim's
  ``cbow_mean=1``), and the gradient of that mean is added whole to every context word's input
  vector, as in word2vec.c; skip-gram predicts it from each context word's input vector;
* plain SGD whose learning rate falls linearly from ``lr`` to ``min_lr`` over all epochs, by the
  fraction of the corpus' words processed (updated once per chunk of a few thousand centres);
* the input vectors (``W_in``, gensim's ``syn0``) start uniform in ``±0.5/dim``, the output
  vectors (``W_out``, ``syn1neg``) at zero; the result is ``W_in``. The sigmoid is computed
  exactly (word2vec.c and gensim look it up in a table clipped at ``|x| = 6``).

Two implementations of the updates (``config.impl``) draw, for each chunk of centre words, from
a generator seeded from the seed, the epoch and the chunk: window half-widths, then negatives.

* ``"native"`` (what ``"auto"`` picks when a C compiler is there): the C loops of
  :mod:`rnnkit.embed.native` are word2vec's sequential SGD exactly (word2vec.c, gensim),
  centre by centre in corpus order. CBOW: each centre word gets its own ``negative`` negatives.
  Skip-gram: each (context word, centre word) pair, in corpus order, gets its own ``negative``
  negatives (``(centres, 2 * window, negative)`` draws); output rows change target by target,
  the context word's input vector at the end of its pair.
* ``"torch"``: each step does ``batch_size`` centre words with the same window width as a few
  batched matrix products with sparse row updates (``index_add_``), no autograd. To keep steps
  few and large it approximates word2vec: in skip-gram, a centre's negatives are shared by all its
  context words and a window is one update (Ji et al. 2016, "Parallelizing Word2Vec in Shared and
  Distributed Memory"); in CBOW, groups of ``CBOW_GROUP`` consecutive centres share the negatives
  of the first. Each prediction still meets ``negative`` draws from the same distribution.

``workers`` Python threads train on interleaved chunks concurrently without locks ("Hogwild", as
word2vec and gensim do): the C loops release the GIL, and the PyTorch steps run their torch
operations on one core per thread.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.embed import native
from rnnkit.embed.recipe import BATCH_SIZES, Word2VecConfig
from rnnkit.embed.vectors import WordVectors
from rnnkit.errors import DataError, RnnkitError
from rnnkit.limits import FLOAT_BYTES, check_fits
from rnnkit.pool import map_in_threads

logger = logging.getLogger(__name__)

CBOW_GROUP = 8  # CBOW in PyTorch: consecutive centre words that share one draw of negatives
MAX_SENTENCE = 10_000  # gensim's limit on sentence length (longer ones are cut)


def tokenize_corpus(
    text: str, *, lowercase: bool = True, max_length: int = MAX_SENTENCE
) -> list[list[str]]:
    """Cut a text into "sentences" for training: its word tokens in pieces of ``max_length``.

    Tokens are those of rnnkit's word tokenizer (words with inner apostrophes, single punctuation
    marks), newlines dropped, lowercased by default. Like word2vec on text8, the text is one
    stream; pieces of 10,000 tokens match gensim's longest sentence, so both see the same windows.
    """
    from rnnkit.data.tokenize import WordTokenizer

    tokens = WordTokenizer(lowercase=lowercase, keep_newlines=False).tokenize(text)
    return [tokens[i : i + max_length] for i in range(0, len(tokens), max_length)]


def build_vocab(sentences: Iterable[Sequence[str]], min_count: int) -> tuple[list[str], np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties: first seen first).

    Returns:
        ``(words, counts)`` with ``counts`` an int64 array aligned with ``words``.
    """
    counts = Counter()
    for sentence in sentences:
        counts.update(sentence)
    kept = [(w, c) for w, c in counts.items() if c >= min_count]  # insertion order = first seen
    kept.sort(key=lambda wc: -wc[1])  # stable
    return [w for w, _ in kept], np.array([c for _, c in kept], dtype=np.int64)


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping each occurrence of a word, by word2vec's subsampling formula.

    With ``t = sample * total`` the kept share of a word seen ``c`` times is
    ``(sqrt(c / t) + 1) * t / c``, capped at 1 (word2vec.c; gensim's ``sample``).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def subsample(corpus: Tensor, keep: Tensor, generator: torch.Generator) -> Tensor:
    """Mask of the tokens of ``corpus`` kept this epoch: word ``i`` stays w.p. ``keep[i]``."""
    return torch.rand(len(corpus), generator=generator, dtype=torch.float64) < keep[corpus]


class AliasSampler:
    """Draws from a fixed discrete distribution in O(1) per draw (Walker's alias method).

    Args:
        weights: non-negative weights of the outcomes ``0..n-1`` (need not sum to 1).
    """

    def __init__(self, weights: np.ndarray) -> None:
        p = np.asarray(weights, dtype=np.float64)
        if p.ndim != 1 or len(p) == 0 or (p < 0).any() or p.sum() <= 0:
            raise ValueError("weights must be a non-empty 1-D array of non-negative numbers")
        n = len(p)
        scaled = p * (n / p.sum())
        prob = np.ones(n)
        alias = np.arange(n)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            prob[s], alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        self.prob = torch.from_numpy(prob.astype(np.float32))
        self.alias = torch.from_numpy(alias)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        """Independent draws, int64 tensor of ``shape``."""
        pick = torch.randint(len(self.prob), shape, generator=generator)
        coin = torch.rand(shape, generator=generator)
        return torch.where(coin < self.prob[pick], pick, self.alias[pick])


def negative_sampler(counts: np.ndarray, power: float = 0.75) -> AliasSampler:
    """Sampler of negatives: the unigram distribution to the ``power`` (Mikolov et al. 2013)."""
    return AliasSampler(np.asarray(counts, dtype=np.float64) ** power)


def train_word_vectors(
    sentences: Sequence[Sequence[str]],
    config: Word2VecConfig | None = None,
    *,
    progress: bool = False,
) -> WordVectors:
    """Train word vectors on tokenised sentences.

    Args:
        sentences: lists of tokens; context windows do not cross from one to the next.
        config: hyperparameters (see :class:`Word2VecConfig`).
        progress: show a tqdm bar with the learning rate and words/s.

    Returns:
        the input vectors of the words kept by ``min_count``, most frequent first.
    """
    config = config or Word2VecConfig()
    config.validate()
    words, counts = build_vocab(sentences, config.min_count)
    if not words:
        raise DataError(
            f"no word occurs at least min_count={config.min_count} times; "
            "give more text or a lower --min-count"
        )
    check_fits(
        2 * len(words) * config.dim * FLOAT_BYTES,
        f"{len(words):,} word vectors of dimension {config.dim:,} (input and output)",
        hint="choose a smaller --dim or a higher --min-count",
    )
    corpus, sentence_ids, raw_positions = encode(sentences, {w: i for i, w in enumerate(words)})
    raw_words = sum(len(s) for s in sentences)
    logger.info("%d words in the vocabulary, %d corpus tokens kept", len(words), len(corpus))
    trainer = _Trainer(config, counts)
    start = time.perf_counter()
    trainer.run(corpus, sentence_ids, raw_positions, raw_words, progress=progress)
    seconds = time.perf_counter() - start
    logger.info(
        "trained %d epochs in %.1f s: %.0f words/s",
        config.epochs,
        seconds,
        raw_words * config.epochs / max(seconds, 1e-9),
    )
    return WordVectors(words, trainer.w_in.numpy())


def encode(
    sentences: Sequence[Sequence[str]], index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The in-vocabulary tokens as ``(word ids, sentence numbers, positions in the raw text)``.

    Tokens outside ``index`` are dropped; positions count every token, as word2vec's progress does.
    """
    ids, owners, positions = [], [], []
    offset = 0
    for number, sentence in enumerate(sentences):
        row = np.fromiter(map(index.get, sentence, repeat(-1)), dtype=np.int64, count=len(sentence))
        (where,) = np.nonzero(row >= 0)
        ids.append(row[where])
        owners.append(np.full(len(where), number, dtype=np.int64))
        positions.append(where + offset)
        offset += len(sentence)
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(ids), np.concatenate(owners), np.concatenate(positions)


class _Trainer:
    """The weights and the update rules; one instance trains one model."""

    def __init__(self, config: Word2VecConfig, counts: np.ndarray) -> None:
        self.config = config
        self.batch_size = config.batch_size or BATCH_SIZES[config.model]
        self.native = use_native(config.impl)
        vocab = len(counts)
        generator = torch.Generator().manual_seed(config.seed)
        self.w_in = (torch.rand(vocab, config.dim, generator=generator) - 0.5) / config.dim
        self.w_out = torch.zeros(vocab, config.dim)
        self.keep = torch.from_numpy(keep_probabilities(counts, config.sample))
        self.negatives = negative_sampler(counts)
        # Targets of the K+1 predictions per centre: the true word, then the negatives.
        self.label = torch.zeros(config.negative + 1)
        self.label[0] = 1.0
        # Context offsets, nearest first in the middle: -W..-1, 1..W; width b uses columns
        # W-b .. W+b-1.
        w = config.window
        self.offsets = torch.cat([torch.arange(-w, 0), torch.arange(1, w + 1)])

    def run(
        self,
        corpus: np.ndarray,
        sentence_ids: np.ndarray,
        raw_positions: np.ndarray,
        raw_words: int,
        *,
        progress: bool,
    ) -> None:
        from tqdm.auto import tqdm

        config = self.config
        corpus_t, sentences_t = torch.from_numpy(corpus), torch.from_numpy(sentence_ids)
        # Raw words done after each in-vocabulary token: progress is counted as gensim counts it.
        raw_done = torch.from_numpy(raw_positions + 1)
        total = raw_words * config.epochs
        chunk = 16 * self.batch_size  # centre words per job handed to a worker
        bar = tqdm(total=total, unit="word", unit_scale=True, disable=not progress, smoothing=0.1)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # each worker thread runs its torch operations on one core
        try:
            # Ctrl-C or kill stops between jobs, the jobs not started cancelled (map_in_threads)
            for epoch in range(config.epochs):
                generator = torch.Generator().manual_seed(config.seed * 1000003 + epoch + 1)
                kept = subsample(corpus_t, self.keep, generator)
                seq, owner, pos = corpus_t[kept], sentences_t[kept], raw_done[kept]
                jobs = []
                for start in range(0, len(seq), chunk):
                    stop = min(start + chunk, len(seq))
                    done = epoch * raw_words + float(pos[stop - 1])
                    seed = (config.seed * 1000003 + epoch) * 1000003 + start
                    jobs.append((seq, owner, start, stop, self.lr(done, total), seed))
                for _, job in zip(map_in_threads(self.chunk, jobs, config.workers), jobs):
                    bar.update(int(epoch * raw_words + float(pos[job[3] - 1])) - bar.n)
                    bar.set_postfix(lr=f"{job[4]:.5f}", refresh=False)
                bar.update((epoch + 1) * raw_words - bar.n)
        finally:
            torch.set_num_threads(threads)
            bar.close()

    def lr(self, done: float, total: float) -> float:
        """Linearly decayed learning rate after ``done`` of ``total`` raw words."""
        config = self.config
        return max(config.min_lr, config.lr - (config.lr - config.min_lr) * done / max(total, 1))

    def chunk(self, job: tuple[Tensor, Tensor, int, int, float, int]) -> None:
        """Train on the centre words ``seq[start:stop]`` of the subsampled corpus.

        ``job`` is ``(seq, owner, start, stop, lr, seed)``: the subsampled word ids and their
        sentence numbers, the centre range, the learning rate and the seed of the random draws.
        Both implementations draw each centre's window half-width, then the negatives: ``K`` per
        centre word, except for the C skip-gram, ``K`` per (context word, centre word) pair.
        """
        seq, owner, start, stop, lr, seed = job
        config = self.config
        generator = torch.Generator().manual_seed(seed)
        width = torch.randint(1, config.window + 1, (stop - start,), generator=generator)
        per_pair = self.native and config.model == "sgns"
        shape = (stop - start, *((2 * config.window,) if per_pair else ()), config.negative)
        negatives = self.negatives.sample(shape, generator)  # (N, K) or (N, 2W, K)
        if self.native:
            native.train_chunk(
                config.model, self.w_in, self.w_out, seq, owner, start, stop, width, negatives,
                window=config.window, lr=lr,
            )  # fmt: skip
        else:
            self.torch_chunk(seq, owner, start, stop, width, negatives, lr)

    def torch_chunk(
        self, seq: Tensor, owner: Tensor, start: int, stop: int, width: Tensor, negatives: Tensor,
        lr: float,
    ) -> None:  # fmt: skip
        """:meth:`chunk` in PyTorch: batches of ``batch_size`` centres with the same width."""
        config = self.config
        n, w = len(seq), config.window
        centres = torch.arange(start, stop)
        positions = centres[:, None] + self.offsets  # (N, 2W)
        inside = (positions >= 0) & (positions < n)
        positions = positions.clamp(0, n - 1)
        valid = inside & (owner[positions] == owner[centres][:, None])
        context = seq[positions]  # (N, 2W)
        targets = torch.cat([seq[centres, None], negatives], 1)  # (N, K+1)
        step = self.sgns_step if config.model == "sgns" else self.cbow_step
        # Same-width centres together, so each step's windows have no padding.
        for b in range(1, w + 1):
            rows = (width == b).nonzero().squeeze(1)
            cols = torch.arange(w - b, w + b)
            ctx_b = context[rows[:, None], cols]  # (N_b, 2b)
            mask_b = valid[rows[:, None], cols]
            # Only windows cut by a sentence or corpus end need a mask (rare).
            mask_b = None if bool(mask_b.all()) else mask_b.float()
            targets_b = targets[rows]  # (N_b, K+1)
            for i in range(0, len(rows), self.batch_size):
                part = slice(i, i + self.batch_size)
                step(ctx_b[part], None if mask_b is None else mask_b[part], targets_b[part], lr)

    def sgns_step(self, context: Tensor, mask: Tensor | None, targets: Tensor, lr: float) -> None:
        """Skip-gram: every context word predicts the centre word against shared negatives.

        The Ji et al. (2016) approximation of word2vec: a centre's negatives serve all its
        context words, and each window is one update from the weights before it.

        Args:
            context: word ids, shape ``(N, C)``; mask: ``(N, C)`` 0/1 or None (all valid);
            targets: centre word then negatives, ``(N, K+1)``; lr: step size.
        """
        n, c = context.shape
        dim = self.config.dim
        v = self.w_in.index_select(0, context.reshape(-1)).view(n, c, dim)  # (N, C, D)
        u = self.w_out.index_select(0, targets.reshape(-1)).view(n, -1, dim)  # (N, K+1, D)
        # Gradient of log sigmoid(+-u.v) w.r.t. the score: label - sigmoid(score), scaled by lr.
        g = torch.bmm(v, u.transpose(1, 2)).sigmoid_().neg_().add_(self.label).mul_(lr)  # (N,C,K+1)
        # A negative that is the centre word itself is skipped, as in word2vec.c.
        g[:, :, 1:].masked_fill_((targets[:, 1:] == targets[:, :1]).unsqueeze(1), 0.0)
        if mask is not None:
            g.mul_(mask.unsqueeze(2))
        grad_in = torch.bmm(g, u)  # (N, C, D)
        grad_out = torch.bmm(g.transpose(1, 2), v)  # (N, K+1, D)
        self.w_in.index_add_(0, context.reshape(-1), grad_in.view(-1, dim))
        self.w_out.index_add_(0, targets.reshape(-1), grad_out.view(-1, dim))

    def cbow_step(self, context: Tensor, mask: Tensor | None, targets: Tensor, lr: float) -> None:
        """CBOW: the mean of the context vectors predicts the centre word (gensim's cbow_mean=1).

        The gradient of the hidden vector is added whole to every context word, as in word2vec.c.
        """
        n, c = context.shape
        dim = self.config.dim
        if mask is None:
            h = F.embedding_bag(context, self.w_in, mode="mean")  # (N, D)
        else:
            weights = mask / mask.sum(1, keepdim=True).clamp(min=1)
            h = F.embedding_bag(context, self.w_in, mode="sum", per_sample_weights=weights)
        centre = targets[:, 0]
        u_pos = self.w_out.index_select(0, centre)  # (N, D)
        g_pos = (u_pos * h).sum(1).sigmoid_().neg_().add_(1.0).mul_(lr)  # (N,)
        # Groups of CBOW_GROUP consecutive centres share the negatives of their first centre.
        groups = -(-n // CBOW_GROUP)
        negatives = targets[::CBOW_GROUP, 1:].reshape(-1)  # (G * K,)
        u_neg = self.w_out.index_select(0, negatives).view(groups, -1, dim)  # (G, K, D)
        h_grouped = F.pad(h, (0, 0, 0, groups * CBOW_GROUP - n)).view(groups, CBOW_GROUP, dim)
        g_neg = torch.bmm(h_grouped, u_neg.transpose(1, 2)).sigmoid_().mul_(-lr)  # (G, group, K)
        centre_grouped = F.pad(centre, (0, groups * CBOW_GROUP - n), value=-1).view(groups, -1, 1)
        g_neg.masked_fill_(centre_grouped == negatives.view(groups, 1, -1), 0.0)  # skip the centre
        grad_h = torch.bmm(g_neg, u_neg).view(-1, dim)[:n].add_(g_pos.unsqueeze(1) * u_pos)
        self.w_out.index_add_(0, centre, g_pos.unsqueeze(1) * h)
        grad_neg = torch.bmm(g_neg.transpose(1, 2), h_grouped)  # (G, K, D)
        self.w_out.index_add_(0, negatives, grad_neg.view(-1, dim))
        # Column by column: cheaper than materialising grad_h for all N*C context words.
        for j in range(c):
            source = grad_h if mask is None else grad_h * mask[:, j : j + 1]
            self.w_in.index_add_(0, context[:, j], source)


def use_native(impl: str) -> bool:
    """Whether training with ``impl`` ("auto", "native" or "torch") runs the C loops.

    Raises:
        RnnkitError: ``impl="native"`` and the C loops could not be built.
    """
    if impl == "torch":
        return False
    if native.available():
        return True
    if impl == "native":
        raise RnnkitError(
            "impl='native' but rnnkit's C word2vec loops could not be built (is a C compiler "
            "installed? the log says why); use impl='auto' or 'torch'"
        )
    logger.info("the C word2vec loops are not available; training with the PyTorch steps")
    return False


def words_per_second(raw_words: int, epochs: int, seconds: float) -> float:
    """Training speed as word2vec and gensim report it: raw corpus words per second."""
    return raw_words * epochs / seconds if seconds > 0 else math.inf
