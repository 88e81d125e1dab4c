"""Language modelling end to end: train on a text, evaluate, generate. The Python face of
``rnnkit lm``.

Example (a short run on the default corpus, then 200 characters from a prompt)::

    from rnnkit.lm import LMRecipe, evaluate, generate, load, train

    result = train("runs/shakespeare", recipe=LMRecipe(max_minutes=2))
    lm = load("runs/shakespeare")
    print(generate(lm, "ROMEO.\\n", length=200, temperature=0.8, seed=1))
    print(evaluate("runs/shakespeare", split="test"))   # loss, perplexity, bits per character

A run directory (see :mod:`rnnkit.training` for the files the trainer writes) also holds
``config.json`` (``{"model": LMConfig, "train": TrainConfig, "data": ...}``) and ``vocab.json``.
The vocabulary is built from the training split; validation and test tokens outside it count
as ``<unk>``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.checkpoint import RunDir, load_model_weights
from rnnkit.data import UNK, Tokenizer, Vocab, get_tokenizer, load_corpus, split_text
from rnnkit.data.batching import as_tensor, batchify, check_long_enough, get_window, num_windows
from rnnkit.embeddings.vectors import WordVectors
from rnnkit.errors import DataError, RunDirError
from rnnkit.models.lm import LMConfig, RNNLanguageModel
from rnnkit.recipes import LMRecipe
from rnnkit.training import BEST, CHECKPOINT, TrainConfig, Trainer, TrainResult, config_dict

logger = logging.getLogger(__name__)

TASK = "lm"
EVAL_BATCH_SIZE = 16  # streams used to evaluate a split (few: little context is lost at starts)
EVAL_BPTT = 256  # window length when evaluating


class LanguageModelTask:
    """The LM as a :class:`rnnkit.training.TrainingTask`: B streams, truncated-BPTT windows,
    the hidden state carried from window to window."""

    name = TASK

    def __init__(self, splits: dict[str, Tensor], *, batch_size: int, bptt: int) -> None:
        check_long_enough(splits["train"].numel(), batch_size, bptt, what="the training text")
        self.splits = splits
        self.bptt = bptt
        self.streams = batchify(splits["train"], batch_size)  # (T, B)

    def steps_per_epoch(self) -> int:
        return num_windows(self.streams, self.bptt)

    def train_batches(self, epoch: int, start: int) -> Any:
        # The same order every epoch: the streams must continue from window to window.
        for index in range(start, self.steps_per_epoch()):
            yield get_window(self.streams, index, self.bptt)

    def train_loss(self, model: nn.Module, batch: Any, carry: Any) -> tuple[Tensor, int, Any]:
        inputs, targets = batch
        loss, state = model.loss(inputs, targets, carry)
        return loss, targets.numel(), state

    def evaluate(self, model: nn.Module, split: str) -> float:
        return stream_loss(model, self.splits[split])[0]


def stream_loss(model: nn.Module, ids: Tensor) -> tuple[float, int]:
    """Mean loss (nats/token) of ``model`` predicting every token of ``ids`` from the ones before
    (read as a few parallel streams, state carried); also the number of tokens predicted."""
    if ids.numel() < 2:
        raise DataError(f"the evaluation text has {ids.numel()} tokens; need at least 2")
    streams = batchify(ids, max(1, min(EVAL_BATCH_SIZE, ids.numel() // 2)))
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for index in range(num_windows(streams, EVAL_BPTT)):
            inputs, targets = get_window(streams, index, EVAL_BPTT)
            loss, state = model.loss(inputs, targets, state)
            total += float(loss) * targets.numel()
            count += targets.numel()
    return total / count, count


class LoadedLM(NamedTuple):
    """A trained language model with what is needed to use it."""

    model: RNNLanguageModel
    vocab: Vocab
    tokenizer: Tokenizer
    config: dict[str, Any]  # the run's config.json


def prepare_text(recipe: LMRecipe) -> tuple[str, Tokenizer, dict[str, str]]:
    """The corpus text, the tokenizer and the three split texts of ``recipe``."""
    text = load_corpus(recipe.data, encoding=recipe.encoding)
    tokenizer = get_tokenizer(recipe.level)
    return text, tokenizer, dict(zip(("train", "valid", "test"), split_text(text)))


def encode_splits(tokenizer: Tokenizer, vocab: Vocab, texts: dict[str, str]) -> dict[str, Tensor]:
    """Token-id tensors of the split texts."""
    return {name: as_tensor(vocab.encode(tokenizer.tokenize(t))) for name, t in texts.items()}


def _data_source(data: str) -> str:
    return data if not os.path.exists(data) else os.path.abspath(data)


def train(
    out: str | os.PathLike,
    *,
    recipe: LMRecipe | None = None,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    vectors: WordVectors | None = None,
) -> TrainResult:
    """Train a language model into the run directory ``out`` (or continue it with ``resume``).

    Args:
        out: the run directory (new or empty; an existing run with ``resume``).
        recipe: data, model and training settings (ignored when resuming: the run's own are used).
        resume: continue the run in ``out`` exactly where it stopped.
        budget: on resume, new values for ``epochs``/``max_steps``/``max_minutes``.
        quiet: no progress bar.
        report: receives one-line progress messages.
        vectors: the word vectors of ``recipe.embeddings``, if the caller has loaded them already.
    """
    if resume:
        run = RunDir.open(out, TASK, require=["config.json", "vocab.json", CHECKPOINT])
        config = run.read_json("config.json")
        recipe = LMRecipe(**config["recipe"])
        vocab = Vocab.load(run.file("vocab.json"))
        text, tokenizer, texts = prepare_text(recipe)
        if hashlib.sha256(text.encode()).hexdigest() != config["data"]["sha256"]:
            raise DataError(
                f"the text of {recipe.data} changed since the run started; cannot resume"
            )
        train_config = TrainConfig.from_dict({**config["train"], **(budget or {})})
        model_config = LMConfig.from_dict(config["model"])
    else:
        recipe = recipe or LMRecipe()
        text, tokenizer, texts = prepare_text(recipe)
        vocab = Vocab.build(tokenizer.tokenize(texts["train"]), specials=[UNK])
        model_config = recipe.model_config(len(vocab))
        train_config = recipe.train_config()
    splits = encode_splits(tokenizer, vocab, texts)
    task = LanguageModelTask(splits, batch_size=recipe.batch_size, bptt=recipe.bptt)
    if not resume:
        run = RunDir.create(out, TASK)
        config = {
            "recipe": {**asdict(recipe), "data": _data_source(recipe.data)},
            "model": model_config.to_dict(),
            "train": config_dict(train_config),
            "data": {"sha256": hashlib.sha256(text.encode()).hexdigest(), "characters": len(text)},
        }
        run.write_json("config.json", config)
        vocab.save(run.file("vocab.json"))
    else:
        config["train"] = config_dict(train_config)
        run.write_json("config.json", config)
    torch.manual_seed(train_config.seed)  # the initial weights
    model = RNNLanguageModel(model_config)
    if recipe.embeddings and not resume:  # a resumed run has them in its checkpoint
        from rnnkit.embeddings.pretrained import load_into_embedding

        vectors = vectors or WordVectors.load(recipe.embeddings)
        coverage = load_into_embedding(
            model.embedding, vocab.itos, vectors, freeze=recipe.freeze_embeddings
        )
        (report or logger.info)(f"embeddings from {recipe.embeddings}: {coverage}")
    logger.info("language model: %d parameters", sum(p.numel() for p in model.parameters()))
    trainer = Trainer(model, task, train_config, run, quiet=quiet, report=report)
    return trainer.fit(resume=resume)


def load(run_dir: str | os.PathLike, *, weights: str = BEST) -> LoadedLM:
    """The trained model of ``run_dir`` (best validation weights), its vocabulary and tokenizer."""
    run = RunDir.open(run_dir, TASK, require=["config.json", "vocab.json", weights])
    config = run.read_json("config.json")
    try:
        model = RNNLanguageModel(LMConfig.from_dict(config["model"]))
        tokenizer = get_tokenizer(config["recipe"]["level"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{run.file('config.json')} is damaged ({exc})") from None
    load_model_weights(run, model, weights)
    model.eval()
    return LoadedLM(model, Vocab.load(run.file("vocab.json")), tokenizer, config)


def evaluate(
    run_dir: str | os.PathLike,
    *,
    data: str | None = None,
    encoding: str = "utf-8",
    split: str = "valid",
) -> dict[str, Any]:
    """Loss (nats/token), perplexity and bits per character of a run on a split.

    Args:
        run_dir: the run directory.
        data: another corpus or text file (default: the run's own); it is split 90/5/5 too.
        encoding: encoding of ``data``.
        split: ``"valid"`` or ``"test"`` (or ``"train"``).
    """
    if split not in ("train", "valid", "test"):
        raise ValueError(f"split must be train, valid or test, got {split!r}")
    lm = load(run_dir)
    source = data or lm.config["recipe"]["data"]
    text = load_corpus(source, encoding=encoding if data else lm.config["recipe"]["encoding"])
    split_text_ = dict(zip(("train", "valid", "test"), split_text(text)))[split]
    tokens = lm.tokenizer.tokenize(split_text_)
    unknown = len(lm.vocab.unknown(tokens))
    loss, _ = stream_loss(lm.model, as_tensor(lm.vocab.encode(tokens)))
    # Bits per character: the split's total information (mean loss x tokens) over its characters,
    # comparable between character and word models.
    nats = loss * len(tokens)
    return {
        "run": os.fspath(run_dir),
        "data": source,
        "split": split,
        "tokens": len(tokens),
        "characters": len(split_text_),
        "unknown_types": unknown,
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bits_per_char": nats / max(len(split_text_), 1) / math.log(2),
    }


def encode_prime(
    lm: LoadedLM, prime: str, *, report: Callable[[str], None] | None = None
) -> list[int]:
    """Token ids of ``prime``: characters outside the vocabulary are an error (naming them);
    unknown words become ``<unk>`` (reported)."""
    tokens = lm.tokenizer.tokenize(prime)
    if not tokens:
        raise ValueError("the prime is empty after tokenization; give --prime some text")
    unknown = lm.vocab.unknown(tokens)
    if unknown and lm.tokenizer.level == "char":
        shown = ", ".join(repr(t) for t in unknown)
        raise DataError(f"the prime has characters outside the model's vocabulary: {shown}")
    if unknown and report is not None:
        report(f"words outside the vocabulary read as {UNK}: {', '.join(unknown)}")
    return lm.vocab.encode(tokens)


class _WithoutToken:
    """A decoder (``step``/``reorder``) that never proposes ``token``: generated text should not
    contain ``<unk>``, which stands for text the model never saw."""

    def __init__(self, model: RNNLanguageModel, token: int) -> None:
        self.model, self.token = model, token

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        log_probs, state = self.model.step(tokens, state)  # (N, V)
        log_probs = log_probs.index_fill(1, torch.tensor([self.token]), -math.inf)
        return torch.log_softmax(log_probs, dim=-1), state  # renormalised without the token

    def reorder(self, state: Any, index: Tensor) -> Any:
        return self.model.reorder(state, index)


def generate(
    lm: LoadedLM,
    prime: str,
    *,
    length: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    beam: int = 0,
    seed: int | None = None,
    on_text: Callable[[str], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> str:
    """Continue ``prime`` by ``length`` tokens; returns the prime and its continuation.

    Args:
        lm: a model from :func:`load`.
        prime: the text to continue (see :func:`encode_prime` for unknown tokens).
        length: tokens to generate.
        temperature, top_k, top_p: sampling settings (see :func:`rnnkit.search.sample`).
        greedy: take the most likely token each step instead of sampling.
        beam: if > 1, beam search of this width for the most likely continuation.
        seed: seed of the sampling generator (None: nondeterministic).
        on_text: called with each new piece of text as it is produced (streaming).
        report: receives warnings such as unknown prime words.
    """
    from rnnkit import search

    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    ids = encode_prime(lm, prime, report=report)
    model, vocab, tokenizer = lm.model, lm.vocab, lm.tokenizer
    model.eval()
    prime_tokens = vocab.decode(ids)
    generated: list[str] = []
    shown = tokenizer.detokenize(prime_tokens)

    def emit(step_tokens: Tensor) -> None:
        nonlocal shown
        generated.append(vocab.itos[int(step_tokens[0])])
        text = tokenizer.detokenize(prime_tokens + generated)
        if on_text is not None and text.startswith(shown):
            on_text(text[len(shown) :])
        shown = text

    if on_text is not None:
        on_text(shown)
    decoder: Any = model if vocab.unk_index is None else _WithoutToken(model, vocab.unk_index)
    with torch.no_grad():
        state = model.prime(torch.tensor(ids[:-1], dtype=torch.long).unsqueeze(1))
        last = ids[-1]
        if beam > 1:
            best = search.beam_search(decoder, state, last, None, beam, length)[0][0]
            for token in best.tokens:
                emit(torch.tensor([token]))
        elif greedy:
            search.greedy(decoder, state, last, None, length, on_token=emit)
        else:
            generator = None
            if seed is not None:
                generator = torch.Generator().manual_seed(seed)
            search.sample(
                decoder, state, last, None, length, temperature=temperature, top_k=top_k,
                top_p=top_p, generator=generator, on_token=emit,
            )  # fmt: skip
    return tokenizer.detokenize(prime_tokens + generated)
