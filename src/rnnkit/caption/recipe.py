"""The default settings of ``rnnkit caption train``: one source for each default.

Torch-free, so ``--help`` can show the defaults without importing torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from rnnkit.errors import ConfigError

# What the training loss is per: the trainer's progress line and the playground's curves say it.
LOSS_UNIT = "nats/word"

CELL_POSITIONS = ("none", "learned", "coordinates")
# attention: which expected coordinates of the glimpses the decoder reads (see model.py)
GLIMPSE_POSITIONS = ("none", "current", "previous", "memory")
# How beam search ranks the captions it found, unless told otherwise (describe, eval, the
# benchmark), for a model trained on uniformly drawn references: by their agreement with each
# other (rnnkit.search.consensus). Chosen on the validation split, where the beam's most probable
# caption is often a rare paraphrase ("a single red circle") that CIDEr-D, scoring consensus with
# the references, ranks below greedy search's "a red circle"; see docs/captioning.md. No length
# penalty: none helped on validation. A model trained on consensus-weighted references
# (consensus_references > 0) already makes the shared phrasing the most probable one; for it the
# beam's most probable caption scored higher on validation (RERANK_WEIGHTED; see rerank_of).
RERANK = "consensus"
RERANK_WEIGHTED = "none"
CONSENSUS_SYNTH = 40.0  # consensus_references on the synthetic scenes, unless told otherwise
# The key of a run's saved recipe that says its consensus_references applied to every decoder.
# Runs saved before drew weighted references for the attention decoder only: their baselines
# (mean, text) drew uniformly, whatever k their recipe records (see CaptionRecipe.from_dict).
DRAWN_FOR_EVERY_DECODER = "references_drawn_for_every_decoder"
SAMPLING_RAMP_EPOCHS = 2  # scheduled sampling reaches its rate after this many epochs
# What chooses the weights a run keeps as best (recipe field `selection`): the CIDEr-D of greedy
# captions of the first `selection_images` validation pictures, or the teacher-forced
# validation loss over all references (every run saved before the field was chosen on it).
SELECTIONS = ("cider-d", "loss")


@dataclass
class CaptionRecipe:
    """Everything ``rnnkit caption train`` decides: data, model shape, training settings.

    Chosen for a 10-minute budget on 2 CPU cores with the synthetic scenes: 64-px images, a
    4-layer CNN (an 8x8 grid of 128-d features), a 256-unit LSTM, 32 images a batch (one of
    their captions each, drawn anew every epoch).
    """

    data: str = (
        "synth-scenes"  # "synth-scenes", a Karpathy split .json, or an image<TAB>caption .tsv
    )
    images_dir: str | None = None  # image folder of a Karpathy .json (default: the JSON's folder)
    encoding: str = "utf-8"  # of the caption file (.json or .tsv; a byte-order mark decides)
    image_size: int = 64  # images are resized to this square side (pixels)
    scenes: tuple[int, int, int] = (6000, 500, 500)  # synthetic images per split
    scene_seed: int = 0  # seed of the synthetic scenes
    min_freq: int = 1  # words seen fewer times in the training captions become <unk>
    decoder: str = "attention"  # "attention", "mean" (no attention) or "text" (no image)
    encoder: str = "cnn"  # "cnn" (trained here) or "efficientnet-lite0" (frozen, pretrained)
    channels: int = 32  # channels of the CNN's first layer
    feature_size: int = 128  # CNN feature size
    embedding_dim: int = 64  # word embedding size
    hidden_size: int = 256  # LSTM state size
    attention_size: int = 128  # additive attention hidden size
    dropout: float = 0.3  # dropout on embeddings and before the output layer
    attention_penalty: float = 1.0  # weight of the doubly stochastic penalty (Xu et al. eq. 14)
    # the context (attended, or the mean feature) also feeds the output layer (Xu et al. eq. 7)
    deep_output: bool = True
    # attention: where each grid cell is, in its feature: "none", "learned" (a vector per cell
    # added to it) or "coordinates" (the cell's x and y in [-1, 1] appended to it)
    cell_positions: str = "none"
    glimpses: int = 1  # attention: attention heads (glimpses) per step, each with its own gate
    # attention: the glimpses' expected cell coordinates (sum_i alpha_i (x_i, y_i)) fed to the LSTM
    # and the output layer: "none", "current" (this step's), "previous" (this step's and the last
    # step's: where the word before was read) or "memory" (this step's and a remembered place: the
    # last word's, kept or not by a gate the word sets, so "circle" can keep where the circle was
    # read until the relation word). "memory" was chosen on validation (docs/captioning.md)
    glimpse_positions: str = "memory"
    # training: the probability of feeding the model's own best guess for the previous word
    # instead of the true one (scheduled sampling, Bengio et al. 2015), reached linearly over
    # the first SAMPLING_RAMP_EPOCHS epochs
    scheduled_sampling: float = 0.0
    # training: the probability of replacing a previous word by <unk> (word dropout, Bowman et
    # al. 2016), so the next word must come from the image rather than the words before it
    word_dropout: float = 0.0
    # training, every decoder: k >= 0; an image's reference caption is drawn with probability
    # proportional to exp(k * its mean n-gram agreement with the image's other references), so
    # greedy search follows the phrasing the references share where two phrasings part ("a small
    # red circle" -> "left of" or "and"); 0: uniformly. None: CONSENSUS_SYNTH on the synthetic
    # scenes, where 40 was chosen on validation over 20 and 0 (docs/captioning.md), and 0 on a
    # user's captions, where it was never measured (see consensus_k)
    consensus_references: float | None = None
    max_length: int = 20  # longest caption generated, the end token included
    # training: what chooses the weights kept as best (model.safetensors): "cider-d", the CIDEr-D
    # of greedy captions of the first selection_images validation pictures (the figure the
    # benchmark reports; the loss over all references rises early when a model leans to one
    # phrasing, and kept step 500 of ~5,000 for some baselines), or "loss" (runs saved before
    # this field). The validation loss is computed and logged either way
    selection: str = "cider-d"
    selection_images: int = 500  # validation pictures captioned at every validation ("cider-d")
    batch_size: int = 32  # images per batch
    optimizer: str = "adamw"  # "adamw" or "sgd"
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay
    schedule: str = "cosine"  # learning-rate decay over the budget
    warmup_steps: int = 50  # linear warm-up steps
    clip_norm: float = 2.0  # gradient-norm clipping
    ema: float = 0.0  # validate and keep a moving average of the weights (this decay; 0: off)
    epochs: int | None = None  # budget: passes over the training images
    max_steps: int | None = None  # budget: optimizer steps
    max_minutes: float | None = 10.0  # budget: wall-clock minutes
    eval_every: int = 500  # validate and checkpoint every N steps
    seed: int = 0  # random seed of the weights and batches

    def __post_init__(self) -> None:
        self.scenes = tuple(self.scenes)  # type: ignore[assignment]  # JSON gives a list
        if len(self.scenes) != 3 or min(self.scenes) < 1:
            raise ConfigError(f"scenes must be three positive counts, got {self.scenes}")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be >= 2, got {self.max_length}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.cell_positions not in CELL_POSITIONS:
            raise ConfigError(
                f"cell_positions must be one of {', '.join(CELL_POSITIONS)}, "
                f"got {self.cell_positions!r}"
            )
        check_glimpses(self.glimpses, self.glimpse_positions)
        if self.selection not in SELECTIONS:
            raise ConfigError(
                f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}"
            )
        if not isinstance(self.selection_images, int) or self.selection_images < 1:
            raise ConfigError(
                f"selection_images must be a positive integer, got {self.selection_images!r}"
            )
        for name in ("scheduled_sampling", "word_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
        if self.consensus_references is not None and not 0.0 <= self.consensus_references <= 100.0:
            raise ConfigError(
                f"consensus_references must be in [0, 100], got {self.consensus_references!r}"
            )
        if self.attention_penalty < 0:
            raise ConfigError(f"attention_penalty must be >= 0, got {self.attention_penalty}")

    def train_config(self) -> Any:
        """The :class:`rnnkit.training.TrainConfig` of this recipe."""
        from rnnkit.training import TrainConfig

        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def consensus_k(self) -> float:
        """The k of the references' drawing weights this recipe trains with: the value given,
        else CONSENSUS_SYNTH on the synthetic scenes and 0 (uniform) on a user's captions. Human
        references differ far more than the scenes' paraphrases, and at k = 40 nearly every
        draw would be the one most central caption, a fifth of the data; that was not measured,
        so a user's data keeps the usual uniform draw unless asked."""
        if self.consensus_references is not None:
            return float(self.consensus_references)
        return CONSENSUS_SYNTH if self.data == "synth-scenes" else 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptionRecipe:
        """The recipe a run saved (its ``config.json``), as that run was trained."""
        names = {f.name for f in fields(cls)}
        # Runs saved before these fields drew uniformly and kept the lowest validation loss.
        data = {"consensus_references": 0.0, "selection": "loss", **data}
        if data.get("decoder", "attention") != "attention" and not data.get(
            DRAWN_FOR_EVERY_DECODER
        ):  # a baseline saved while the weighted draw was the attention decoder's alone
            data["consensus_references"] = 0.0
        return cls(**{k: v for k, v in data.items() if k in names})


def check_glimpses(glimpses: int, glimpse_positions: str) -> None:
    """Refuse a glimpse count or a glimpse-positions mode that the model does not have."""
    if not isinstance(glimpses, int) or not 1 <= glimpses <= 4:
        raise ConfigError(f"glimpses must be an integer from 1 to 4, got {glimpses!r}")
    if glimpse_positions not in GLIMPSE_POSITIONS:
        raise ConfigError(
            f"glimpse_positions must be one of {', '.join(GLIMPSE_POSITIONS)}, "
            f"got {glimpse_positions!r}"
        )


def rerank_of(recipe: CaptionRecipe) -> str:
    """The beam's default ranking for a run of ``recipe``: ``RERANK`` for a model trained on
    uniformly drawn references, ``RERANK_WEIGHTED`` for one trained on consensus-weighted ones."""
    return RERANK_WEIGHTED if recipe.consensus_k() > 0 else RERANK
