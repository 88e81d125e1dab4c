"""The AWD-LSTM recipe's pieces against hand computations, exact resume across the NT-ASGD
switch, and recipe selection on the command line."""

import dataclasses
import json
import random

import pytest
import torch
from safetensors.torch import load_file

from rnnkit import cli, lm
from rnnkit.errors import ConfigError
from rnnkit.lm import RECIPES, LMRecipe, get_recipe
from rnnkit.lm.model import LMConfig, RNNLanguageModel
from rnnkit.lm.task import LanguageModelTask, activation_penalty
from rnnkit.nn import LSTM
from rnnkit.training.optim import NTASGD


def test_ar_tar_penalty_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    dropped = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    ar_sum = sum(float(dropped[t, b, h]) ** 2 for t in range(4) for b in range(2) for h in range(3))
    tar_sum = sum(
        (float(raw[t, b, h]) - float(raw[t - 1, b, h])) ** 2
        for t in range(1, 4) for b in range(2) for h in range(3)
    )  # fmt: skip
    expected = 2.0 * ar_sum / 24 + 0.5 * tar_sum / 18
    got = activation_penalty(raw, dropped, ar=2.0, tar=0.5)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_nt_asgd_switches_when_validation_stalls_and_averages_the_iterates():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = NTASGD([w], lr=0.5, nonmono=2)
    # Not worse than the best before the last 2 -> no switch; 5 > min([3]) -> switch.
    assert [opt.observe(v) for v in (3.0, 4.0, 4.5)] == [False, False, False]
    start = w.detach().clone()
    assert opt.observe(5.0) and opt.averaging and not opt.observe(9.0)  # switches once
    iterates, current = [start], start.clone()
    for grad in ([1.0, 2.0], [-4.0, 0.5], [0.25, 1.0]):
        w.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        current = current - 0.5 * torch.tensor(grad, dtype=torch.float64)  # plain SGD
        iterates.append(current)
        assert torch.equal(w.detach(), current)
    manual = torch.stack(iterates).mean(0)
    with opt.averaged():
        assert torch.allclose(w.detach(), manual, atol=1e-15)
    assert torch.equal(w.detach(), current)  # the raw weights come back


def test_nt_asgd_does_not_average_before_the_switch():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = NTASGD([w], lr=0.1, nonmono=1)
    assert not opt.observe(2.0) and not opt.observe(1.0)  # improving
    w.grad = torch.tensor([1.0])
    opt.step()
    with opt.averaged():
        assert torch.equal(w.detach(), torch.tensor([0.9]))


def test_variable_bptt_windows_depend_only_on_seed_and_epoch():
    ids = torch.arange(4000) % 50

    def task(seed):
        splits = {"train": ids, "valid": ids[:100], "test": ids[:100]}
        return LanguageModelTask(splits, batch_size=4, bptt=20, variable_bptt=True, seed=seed)

    a, b = task(3), task(3)
    assert a.windows(0) == b.windows(0) and a.windows(1) == b.windows(1)
    assert a.windows(0) != a.windows(1) and a.windows(0) != task(4).windows(0)
    for epoch in range(3):
        windows = a.windows(epoch)
        # Contiguous, covering every target row once; lengths >= 5 except the last.
        firsts = [f for f, _ in windows]
        assert firsts == [0] + list(__import__("itertools").accumulate(n for _, n in windows))[:-1]
        assert sum(n for _, n in windows) == a.streams.size(0) - 1
        assert min(n for _, n in windows[:-1]) >= 5
    lengths = [n for e in range(20) for _, n in a.windows(e)[:-1]]
    assert 17 < sum(lengths) / len(lengths) < 21  # 0.95 * 20 + 0.05 * 10 = 19.5 on average
    # Batches resume mid-epoch at the same window.
    batches = list(a.train_batches(2, 0))
    later = list(a.train_batches(2, 5))
    assert all(torch.equal(x[0], y[0]) for x, y in zip(batches[5:], later))
    assert len(later) == len(batches) - 5


def test_locked_stack_in_eval_equals_the_multi_layer_lstm():
    config = LMConfig(
        vocab_size=11, cell="lstm", embedding_dim=6, hidden_size=5, num_layers=3,
        dropout=0.4, locked_dropout=True, embedding_dropout=0.2, impl="rnnkit",
    )  # fmt: skip
    torch.manual_seed(0)
    model = RNNLanguageModel(config).eval()
    plain = LSTM(6, 5, 3, impl="rnnkit").eval()
    with torch.no_grad():
        for i, layer in enumerate(model.rnn.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(plain, f"{name}_l{i}").copy_(getattr(layer, f"{name}_l0"))
    tokens = torch.randint(0, 11, (7, 2))
    h0 = (torch.randn(3, 2, 5), torch.randn(3, 2, 5))
    raw, _, (h, c) = model.features(tokens, h0)
    want, (h_want, c_want) = plain(model.embedding(tokens), h0)
    assert torch.allclose(raw, want, atol=1e-6)
    assert torch.allclose(h, h_want, atol=1e-6) and torch.allclose(c, c_want, atol=1e-6)


def tiny_awd(data, **changes):
    recipe = replace_recipe(
        get_recipe("awd-lstm"), data=str(data), level="char", embedding_dim=8, hidden_size=12,
        bptt=10, batch_size=4, eval_every=3, nonmono=1, lr=8.0, max_minutes=None,
    )  # fmt: skip
    return replace_recipe(recipe, **changes)


def replace_recipe(recipe, **changes):
    from dataclasses import replace

    return replace(recipe, **changes)


def test_resume_is_exact_across_the_nt_asgd_switch(tmp_path):
    data = tmp_path / "text.txt"
    rng = random.Random(0)
    data.write_text("".join(rng.choice("abcde fgh\n") for _ in range(3000)))
    messages = []
    straight = lm.train(tmp_path / "a", recipe=tiny_awd(data, max_steps=24), report=messages.append)
    switched = [m for m in messages if "NT-ASGD" in m]
    assert len(switched) == 1, messages
    switch_step = int(switched[0].split()[1].rstrip(":"))
    stop = switch_step - 3  # a validation step before the switch; resume across it
    lm.train(tmp_path / "b", recipe=tiny_awd(data, max_steps=stop))
    resumed = lm.train(tmp_path / "b", resume=True, budget={"max_steps": 24})
    assert resumed.steps == straight.steps == 24
    assert resumed.best_valid_loss == straight.best_valid_loss
    for name in ("model.safetensors", "last.safetensors"):
        a, b = load_file(tmp_path / "a" / name), load_file(tmp_path / "b" / name)
        assert a.keys() == b.keys() and any("average" in k for k in a) == (
            name != "model.safetensors"
        )
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # The fine-tuning stage: from run a's best weights and vocabulary, averaging from step 1.
    ft = lm.finetune(tmp_path / "a", tmp_path / "ft", budget={"max_steps": 2})
    assert ft.steps == 2
    config = json.loads((tmp_path / "ft" / "config.json").read_text())["recipe"]
    assert config["nonmono"] == 0 and config["start_from"] == str(tmp_path / "a")
    assert (tmp_path / "ft" / "vocab.json").read_text() == (
        tmp_path / "a" / "vocab.json"
    ).read_text()
    last = load_file(tmp_path / "ft" / "last.safetensors")
    assert any("average" in k for k in last)
    tuned = lm.load(tmp_path / "ft").model.state_dict()
    source = load_file(tmp_path / "a" / "model.safetensors")
    # lr 8 moves the weights, but the average of 3 iterates starts at run a's best weights.
    start = [k for k in source if "embedding" in k][0]
    assert not torch.equal(tuned[start], source[start])
    assert torch.allclose(tuned[start], source[start], atol=0.5)


def test_cli_selects_a_named_recipe_and_explicit_options_override_it(monkeypatch):
    from rnnkit.lm import cli as lm_cli

    parser = cli.build_parser()
    args = parser.parse_args(["lm", "train", "--out", "x", "--recipe", "awd-lstm"])
    assert lm_cli.recipe_from_args(args) == RECIPES["awd-lstm"]
    # An explicit value equal to the default recipe's still overrides awd-lstm's.
    args = parser.parse_args(
        ["lm", "train", "--out", "x", "--lr", "3e-3", "--recipe=awd-lstm", "--no-tie-weights",
         "--max-steps", "7"]
    )  # fmt: skip
    recipe = lm_cli.recipe_from_args(args)
    assert recipe.lr == 3e-3 and not recipe.tie_weights and recipe.max_steps == 7
    assert recipe.max_minutes is None and recipe.optimizer == "nt-asgd" and recipe.num_layers == 3
    args = cli.build_parser().parse_args(["lm", "train", "--out", "x"])
    assert lm_cli.recipe_from_args(args) == LMRecipe()
    args = parser.parse_args(["lm", "train", "--out", "x", "--eval-each-epoch"])
    recipe = lm_cli.recipe_from_args(args)
    assert recipe.eval_each_epoch and recipe.train_config().eval_each_epoch
    assert not LMRecipe().train_config().eval_each_epoch  # off by default


def test_cli_help_shows_the_recipe_defaults_and_bad_names_list_the_recipes(run_cli, capsys):
    with pytest.raises(SystemExit):
        cli.main(["lm", "train", "--recipe", "awd-lstm", "--help"])
    help_text = capsys.readouterr().out
    assert "nt-asgd" in help_text and "awd-lstm-full" in help_text
    assert "(default: 3.75)" in help_text  # awd-lstm's learning rate
    code, _, err = run_cli("lm", "train", "--out", "x", "--recipe", "awd")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "'awd'" in line and "default, awd-lstm, awd-lstm-full" in line
    with pytest.raises(ConfigError, match="the recipes are"):
        get_recipe("nope")


def test_the_full_recipe_has_the_papers_values():
    full = RECIPES["awd-lstm-full"]
    assert (full.embedding_dim, full.hidden_size, full.num_layers, full.bptt) == (400, 1150, 3, 70)
    assert (full.input_dropout, full.hidden_dropout, full.dropout) == (0.65, 0.3, 0.4)
    assert (full.embedding_dropout, full.weight_drop, full.ar, full.tar) == (0.1, 0.5, 2.0, 1.0)
    assert (full.lr, full.clip_norm, full.optimizer) == (30.0, 0.25, "nt-asgd")


def test_the_adamw_recipe_is_awd_lstm_at_half_rates_with_the_default_optimizer(capsys):
    awd, adamw = RECIPES["awd-lstm"], RECIPES["awd-lstm-adamw"]
    halved = ("dropout", "input_dropout", "hidden_dropout", "embedding_dropout", "weight_drop")
    for name in halved:
        assert getattr(adamw, name) == getattr(awd, name) / 2 > 0, name
    optimizer = ("optimizer", "lr", "schedule", "warmup_steps", "clip_norm", "weight_decay")
    for name in optimizer:
        assert getattr(adamw, name) == getattr(LMRecipe(), name), name
    assert (adamw.optimizer, adamw.lr) == ("adamw", 3e-3)
    # The budget and vocabulary it was measured at (docs/cells.md, 120 CPU-minutes).
    assert (adamw.max_vocab, adamw.max_minutes, adamw.eval_every) == (10_000, 120.0, 500)
    changed = set(halved) | set(optimizer) | {"max_vocab", "max_minutes", "eval_every"}
    for field in dataclasses.fields(LMRecipe):
        if field.name not in changed:  # the model, AR/TAR, windows: awd-lstm's
            assert getattr(adamw, field.name) == getattr(awd, field.name), field.name
    with pytest.raises(SystemExit):
        cli.main(["lm", "train", "--recipe", "awd-lstm-adamw", "--help"])
    help_text = capsys.readouterr().out
    assert "(default: 0.15)" in help_text and "(default: 0.003)" in help_text


def test_the_scaled_recipe_keeps_the_papers_rate_per_token_and_can_switch_in_its_budget():
    full, scaled = RECIPES["awd-lstm-full"], RECIPES["awd-lstm"]
    tokens = lambda r: r.batch_size * r.bptt  # noqa: E731  (tokens per update)
    assert scaled.lr == pytest.approx(full.lr * tokens(scaled) / tokens(full))
    assert scaled.lr == 3.75 and scaled.optimizer == "nt-asgd" and scaled.clip_norm == 0.25
    # Every validation worse than the one before: the earliest switch NT-ASGD can make.
    w = torch.nn.Parameter(torch.zeros(1))
    opt = NTASGD([w], lr=scaled.lr, nonmono=scaled.nonmono)
    first = next(k for k in range(1, 100) if opt.observe(float(k)))
    assert first == scaled.nonmono + 2
    # One thread made 576 steps of the whole corpus in 10 CPU-minutes (docs/cells.md), so
    # 10 minutes on 2 cores are at most twice that: the switch must fit before.
    assert first * scaled.eval_every <= 2 * 576


def test_nt_asgd_with_nonmono_zero_averages_from_the_first_step():
    w = torch.nn.Parameter(torch.tensor([2.0]))
    opt = NTASGD([w], lr=1.0, nonmono=0)
    assert opt.averaging
    for grad in (1.0, 3.0):
        w.grad = torch.tensor([grad])
        opt.step()
    with opt.averaged():
        assert torch.allclose(w.detach(), torch.tensor([(2.0 + 1.0 - 2.0) / 3]), atol=1e-7)


def test_train_tokens_trains_on_the_first_words_of_the_training_split_only(
    tmp_path, run_cli, capsys
):
    # The training split's first 400 words use only "a".."e"; the rest only "v".."z".
    rng = random.Random(0)
    head = " ".join(rng.choice("abcde") for _ in range(400))
    tail = " ".join(rng.choice("vwxyz") for _ in range(3000))
    data = tmp_path / "text.txt"
    data.write_text(head + " " + tail)
    recipe = LMRecipe(
        data=str(data), level="word", cell="gru", embedding_dim=4, hidden_size=8, num_layers=1,
        bptt=10, batch_size=4, max_minutes=None, max_steps=12, eval_every=6, train_tokens=400,
    )  # fmt: skip
    result = lm.train(tmp_path / "run", recipe=recipe)
    assert sorted(lm.load(tmp_path / "run").vocab.itos) == sorted(["<unk>", *"abcde"])
    assert result.epochs_done > 1  # 12 windows of 4 x 10 words over 400 words: more than a pass
    assert lm.evaluate(tmp_path / "run", split="train")["tokens"] == 400
    assert lm.evaluate(tmp_path / "run", split="valid")["unknown_types"] == 5  # v..z unseen
    whole = replace_recipe(recipe, train_tokens=None, max_steps=1)
    lm.train(tmp_path / "whole", recipe=whole)
    assert len(lm.load(tmp_path / "whole").vocab) == 11
    with pytest.raises(ConfigError, match="train_tokens must be at least 2"):
        lm.train(tmp_path / "bad", recipe=replace_recipe(recipe, train_tokens=1))
    assert_refused(run_cli, capsys, "--train-tokens", tmp_path / "x")


def assert_refused(run_cli, capsys, option: str, out) -> None:
    """``lm train OPTION 0`` exits with status 2 and one line naming the option."""
    with pytest.raises(SystemExit) as exit_:
        run_cli("lm", "train", "--out", out, option, "0")
    assert exit_.value.code == 2
    assert f"{option}: must be an integer >= 1" in capsys.readouterr().err.splitlines()[-1]


def test_max_vocab_keeps_the_most_frequent_training_words_and_reads_the_rest_as_unk(
    tmp_path, run_cli, capsys
):
    # "a" x 300, "b" x 200, "c" x 100, then 20 words seen once each: with max_vocab=3 the
    # vocabulary is <unk>, a, b, c, and every rare word (in training and validation) is <unk>.
    rng = random.Random(1)
    words = ["a"] * 300 + ["b"] * 200 + ["c"] * 100 + [f"rare{i}" for i in range(20)]
    rng.shuffle(words)
    data = tmp_path / "text.txt"
    data.write_text(" ".join(words * 2))  # the split takes the end as validation and test
    recipe = LMRecipe(
        data=str(data), level="word", cell="gru", embedding_dim=4, hidden_size=8, num_layers=1,
        bptt=10, batch_size=4, max_minutes=None, max_steps=2, eval_every=2, max_vocab=3,
    )  # fmt: skip
    lm.train(tmp_path / "run", recipe=recipe)
    model = lm.load(tmp_path / "run")
    assert model.vocab.itos == ["<unk>", "a", "b", "c"]
    assert model.model.config.vocab_size == 4
    assert lm.evaluate(tmp_path / "run", split="valid")["unknown_types"] > 0
    full = lm.train(tmp_path / "full", recipe=replace_recipe(recipe, max_vocab=None))
    assert len(lm.load(tmp_path / "full").vocab) > 4 and full.steps == 2
    with pytest.raises(ConfigError, match="max_vocab must be at least 1"):
        lm.train(tmp_path / "bad", recipe=replace_recipe(recipe, max_vocab=0))
    assert_refused(run_cli, capsys, "--max-vocab", tmp_path / "x")
