"""Language modelling end to end: train on a text, evaluate, generate. The Python API that
``rnnkit lm``, ``rnnkit demo``, ``benchmarks/lm.py`` and the docs call.

Example (a short run on the default corpus, then 200 characters from a prompt)::

    from rnnkit.lm import LMRecipe, evaluate, generate, load, train

    result = train("runs/shakespeare", recipe=LMRecipe(max_minutes=2))
    lm = load("runs/shakespeare")
    print(generate(lm, "ROMEO.\\n", length=200, temperature=0.8, seed=1))
    print(evaluate("runs/shakespeare", split="test"))   # loss, perplexity, bits per character

A run directory (see :mod:`rnnkit.runs`) holds ``config.json`` (``{"recipe": LMRecipe, "model":
LMConfig, "train": TrainConfig, "data": {"sha256", "characters"}}``) and ``vocab.json``.
The vocabulary is built from the training split; validation and test tokens outside it count
as ``<unk>``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, NamedTuple

import torch
from torch import Tensor

from rnnkit import runs, search
from rnnkit.data import UNK, Tokenizer, Vocab, get_tokenizer, load_corpus, split_text
from rnnkit.data.batching import as_tensor
from rnnkit.embed.vectors import WordVectors
from rnnkit.errors import ConfigError, DataError
from rnnkit.lm.data import SPLITS, data_source, encode_splits, fingerprint, prepare_text
from rnnkit.lm.model import LMConfig, RNNLanguageModel
from rnnkit.lm.recipe import GenerateRecipe, LMRecipe
from rnnkit.lm.task import TASK, LanguageModelTask, stream_loss
from rnnkit.training import Runtime, TrainConfig, TrainResult, config_dict, fit
from rnnkit.training.distributed import Group, place

logger = logging.getLogger(__name__)


class LoadedLM(NamedTuple):
    """A trained language model with what is needed to use it."""

    model: RNNLanguageModel
    vocab: Vocab
    tokenizer: Tokenizer
    config: dict[str, Any]  # the run's config.json
    place: Group | None = None  # the model's device and precision (None: the CPU, fp32)


def check_recipe(recipe: LMRecipe) -> None:
    """Raise :class:`ConfigError` if ``recipe``'s model or training settings are invalid."""
    if recipe.train_tokens is not None and recipe.train_tokens < 2:
        raise ConfigError(
            f"train_tokens must be at least 2 (or None: all), got {recipe.train_tokens}"
        )
    if recipe.max_vocab is not None and recipe.max_vocab < 1:
        raise ConfigError(f"max_vocab must be at least 1 (or None: all), got {recipe.max_vocab}")
    LMConfig.from_recipe(recipe, 1)
    recipe.train_config()


def train(
    out: str | os.PathLike,
    *,
    recipe: LMRecipe | None = None,
    resume: bool = False,
    budget: dict[str, Any] | None = None,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    vectors: WordVectors | None = None,
    runtime: Runtime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train a language model into the run directory ``out`` (or continue it with ``resume``).

    Args:
        out: the run directory (new or empty; an existing run with ``resume``).
        recipe: data, model and training settings (ignored when resuming: the run's own are used).
        resume: continue the run in ``out`` exactly where it stopped.
        budget: on resume, new values for ``epochs``/``max_steps``/``max_minutes``.
        quiet: no progress bar.
        runtime: device, precision (see docs/distributed.md); under torchrun every rank calls
            this with the same arguments.
        report: receives one-line progress messages.
        vectors: the word vectors of ``recipe.embeddings``, if the caller has loaded them already.
        clock: the seconds counter of the time budget (``time.process_time``: CPU time, for
            comparisons on a busy machine).
    """
    if resume:
        run, config = runs.resume(out, TASK, budget)
        recipe = runs.build(run, config, "recipe", lambda d: LMRecipe(**d))
        vocab = Vocab.load(run.file(runs.VOCAB))
        text, tokenizer, texts = prepare_text(recipe)
        if fingerprint(text)["sha256"] != config.get("data", {}).get("sha256"):
            raise DataError(
                f"the text of {recipe.data} changed since the run started; cannot resume"
            )
        train_config = runs.build(run, config, "train", TrainConfig.from_dict)
        model_config = runs.build(run, config, "model", LMConfig.from_dict)
    else:
        recipe = recipe or LMRecipe()
        check_recipe(recipe)
        text, tokenizer, texts = prepare_text(recipe)
        if recipe.start_from:  # fine-tuning: the other run's vocabulary and weights
            source, _ = runs.load(recipe.start_from, TASK, require=[runs.VOCAB])
            vocab = Vocab.load(source.file(runs.VOCAB))
        else:
            train_tokens = tokenizer.tokenize(texts["train"])[: recipe.train_tokens]
            vocab = Vocab.build(train_tokens, specials=[UNK], max_size=recipe.max_vocab)
        model_config = LMConfig.from_recipe(recipe, len(vocab))
        train_config = recipe.train_config()
    splits = encode_splits(tokenizer, vocab, texts)
    splits["train"] = splits["train"][: recipe.train_tokens]  # (a subset: --train-tokens)
    task = LanguageModelTask(
        splits, batch_size=recipe.batch_size, bptt=recipe.bptt, variable_bptt=recipe.variable_bptt,
        ar=recipe.ar, tar=recipe.tar, seed=recipe.seed,
    )  # fmt: skip
    if not resume:  # (a resumed run's new budget is written by the trainer once it has resumed)
        run = runs.start(
            out,
            TASK,
            recipe={**asdict(recipe), "data": data_source(recipe.data)},
            model=model_config.to_dict(),
            train=config_dict(train_config),
            data=fingerprint(text),
        )
        if run.writer:
            vocab.save(run.file(runs.VOCAB))

    def build_model() -> RNNLanguageModel:
        model = RNNLanguageModel(model_config)
        if recipe.start_from and not resume:  # a resumed run has them in its checkpoint
            source, _ = runs.load(recipe.start_from, TASK)
            runs.load_model_weights(source, model)
        if recipe.embeddings and not resume:  # a resumed run has them in its checkpoint
            from rnnkit.embed.pretrained import load_into_embedding

            words = vectors or WordVectors.load(recipe.embeddings)
            coverage = load_into_embedding(
                model.embedding, vocab.itos, words, freeze=recipe.freeze_embeddings
            )
            (report or logger.info)(f"embeddings from {recipe.embeddings}: {coverage}")
        return model

    return fit(run, task, train_config, build_model, resume=resume, quiet=quiet, report=report,
               runtime=runtime, clock=clock)  # fmt: skip


def finetune(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    budget: dict[str, Any] | None = None,
    quiet: bool = True,
    report: Callable[[str], None] | None = None,
    runtime: Runtime | None = None,
) -> TrainResult:
    """AWD-LSTM's fine-tuning stage: a new run ``out`` that starts from the best weights of
    ``run_dir`` and trains with its recipe, averaging the weights from the first step
    (NT-ASGD with ``nonmono=0``) for ``budget`` (default: the recipe's own); ``runtime`` as
    for :func:`train`."""
    _, config = runs.load(run_dir, TASK, require=[runs.VOCAB])
    recipe = LMRecipe(**config["recipe"])
    changes = {k: v for k, v in (budget or {}).items() if v is not None}
    if changes:
        changes = {"epochs": None, "max_steps": None, "max_minutes": None, **changes}
    recipe = replace(
        recipe, optimizer="nt-asgd", nonmono=0, start_from=os.path.abspath(run_dir), **changes
    )
    return train(out, recipe=recipe, quiet=quiet, report=report, runtime=runtime)


def load(
    run_dir: str | os.PathLike, *, weights: str = runs.BEST, runtime: Runtime | None = None
) -> LoadedLM:
    """The trained model of ``run_dir`` (best validation weights), its vocabulary and tokenizer;
    the model on ``runtime``'s device (default: the CPU)."""
    run, config = runs.load(run_dir, TASK, weights=weights, require=[runs.VOCAB])
    model = RNNLanguageModel(runs.build(run, config, "model", LMConfig.from_dict))
    tokenizer = runs.build(run, config, "recipe", lambda r: get_tokenizer(r["level"]))
    runs.load_model_weights(run, model, weights)
    model.eval()
    vocab = Vocab.load(run.file(runs.VOCAB))
    runs.check_vocab_size(run, runs.VOCAB, len(vocab), model.config.vocab_size)
    return LoadedLM(model, vocab, tokenizer, config, place(model, runtime))


def evaluate(
    run_dir: str | os.PathLike,
    *,
    data: str | None = None,
    encoding: str = "utf-8",
    split: str = "valid",
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Loss (nats/token), perplexity and bits per character of a run on a split.

    Args:
        run_dir: the run directory.
        data: another corpus or text file (default: the run's own); it is split 90/5/5 too.
        encoding: encoding of ``data``.
        split: ``"valid"`` or ``"test"`` (or ``"train"``).
        runtime: the device and precision to evaluate with (default: the CPU, fp32).
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be train, valid or test, got {split!r}")
    lm = load(run_dir, runtime=runtime)
    source = data or lm.config["recipe"]["data"]
    text = load_corpus(source, encoding=encoding if data else lm.config["recipe"]["encoding"])
    split_text_ = dict(zip(SPLITS, split_text(text)))[split]
    tokens = lm.tokenizer.tokenize(split_text_)
    if split == "train" and not data:  # the part of the training split the run trained on
        tokens = tokens[: lm.config["recipe"].get("train_tokens")]
    unknown = len(lm.vocab.unknown(tokens))
    with lm.place.autocast():
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


def generate(
    lm: LoadedLM,
    prime: str,
    *,
    length: int = GenerateRecipe.length,
    temperature: float = GenerateRecipe.temperature,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    beam: int = GenerateRecipe.beam,
    seed: int | None = None,
    on_text: Callable[[str], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> str:
    """Continue ``prime`` by ``length`` tokens; returns the prime and its continuation.

    Args:
        lm: a model from :func:`load`.
        prime: the text to continue (see :func:`encode_prime` for unknown tokens).
        length: tokens to generate.
        temperature, top_k, top_p: sampling settings (see :class:`rnnkit.search.SearchOptions`).
        greedy: take the most likely token each step instead of sampling.
        beam: if > 1, beam search of this width for the most likely continuation.
        seed: seed of the sampling generator (None: nondeterministic).
        on_text: called with each new piece of text as it is produced (streaming; beam search
            streams its result once found).
        report: receives warnings such as unknown prime words.

    Generated text never contains ``<unk>`` (it stands for text the model never saw).
    """
    options = search_options(length, temperature, top_k, top_p, greedy, beam, seed)
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
    banned = [] if vocab.unk_index is None else [vocab.unk_index]
    device = next(model.parameters()).device
    precision = contextlib.nullcontext() if lm.place is None else lm.place.autocast()
    with torch.no_grad(), precision:
        prime_ids = torch.tensor(ids, dtype=torch.long, device=device).unsqueeze(1)  # (T, 1)
        state = model.prime(prime_ids[:-1])
        best = search.decode(
            model, state, prime_ids[-1], None, length, options,
            processors=[search.ban_tokens(banned)], on_token=emit,
        )[0][0]  # fmt: skip
    if options.method == "beam":
        for token in best.tokens:
            emit(torch.tensor([token]))
    return tokenizer.detokenize(prime_tokens + generated)


def search_options(
    length: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    greedy: bool,
    beam: int,
    seed: int | None,
) -> search.SearchOptions:
    """The decoding settings of :func:`generate`'s arguments (validated: ``ConfigError``)."""
    if length < 1:
        raise ConfigError(f"length must be >= 1, got {length}")
    return search.SearchOptions(
        beam_size=beam if beam > 1 else 1, sample=not greedy, temperature=temperature,
        top_k=top_k, top_p=top_p, seed=seed,
    )  # fmt: skip


class StepDetail(NamedTuple):
    """One generated token, with what the model thought when it wrote it."""

    text: str  # the text the token adds
    prob: float  # its probability under the model (temperature 1, before top-k/top-p)
    alternatives: list[tuple[str, float]]  # the most likely tokens of that step, best first
    hidden: list[float]  # last recurrent layer's hidden state it was chosen from


class _Recorder:
    """The model as a decoder that keeps its last step's log-probabilities and state (row 0)."""

    def __init__(self, model: RNNLanguageModel) -> None:
        self.model = model
        self.log_probs: Tensor | None = None
        self.state: Any = None

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        log_probs, state = self.model.step(tokens, state)
        self.log_probs, self.state = log_probs[0], state
        return log_probs, state

    def reorder(self, state: Any, index: Tensor) -> Any:
        return self.model.reorder(state, index)


def generate_steps(
    lm: LoadedLM,
    prime: str,
    *,
    length: int = GenerateRecipe.length,
    temperature: float = GenerateRecipe.temperature,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    beam: int = GenerateRecipe.beam,
    seed: int | None = None,
    top: int = 5,
    on_step: Callable[[StepDetail], None] | None = None,
) -> list[StepDetail]:
    """Continue ``prime`` like :func:`generate`, token by token with the model's view of each.

    Each :class:`StepDetail` holds the token's text, its probability and the ``top`` most
    likely tokens of its step under the model (temperature 1, before top-k/top-p and the ban of
    ``<unk>``), and the last recurrent layer's hidden state it was chosen from (the state after
    the text before it; for an LSTM, ``h``). ``on_step`` receives each as it is produced
    (sampling and greedy search stream; beam search replays its best continuation at the end).
    """
    options = search_options(length, temperature, top_k, top_p, greedy, beam, seed)
    ids = encode_prime(lm, prime)
    model, vocab, tokenizer = lm.model, lm.vocab, lm.tokenizer
    model.eval()
    recorder = _Recorder(model)
    written = vocab.decode(ids)
    steps: list[StepDetail] = []

    def emit(step_tokens: Tensor) -> None:
        token = int(step_tokens[0])
        before = tokenizer.detokenize(written)
        written.append(vocab.itos[token])
        probs = recorder.log_probs.exp()
        best = probs.topk(min(top, probs.numel()))
        hidden = recorder.state[0] if isinstance(recorder.state, tuple) else recorder.state
        detail = StepDetail(
            text=tokenizer.detokenize(written)[len(before) :],
            prob=float(probs[token]),
            alternatives=[
                (vocab.itos[i], float(p))
                for p, i in zip(best.values.tolist(), best.indices.tolist())
            ],
            hidden=hidden[-1, 0].tolist(),
        )
        steps.append(detail)
        if on_step is not None:
            on_step(detail)

    banned = [] if vocab.unk_index is None else [vocab.unk_index]
    with torch.no_grad():
        state = model.prime(torch.tensor(ids[:-1], dtype=torch.long).unsqueeze(1))
        if options.method != "beam":
            search.decode(
                recorder, state, ids[-1], None, length, options,
                processors=[search.ban_tokens(banned)], on_token=emit,
            )  # fmt: skip
            return steps
        best = search.decode(
            model, state, ids[-1], None, length, options, processors=[search.ban_tokens(banned)]
        )[0][0]
        previous = ids[-1]
        for token in best.tokens:  # replay the best continuation to see each step
            state = recorder.step(torch.tensor([previous]), state)[1]
            emit(torch.tensor([token]))
            previous = token
    return steps
