import pytest
import torch

from rnnkit.data.batching import batchify, check_long_enough, get_window, num_windows
from rnnkit.errors import DataError


def test_batchify_makes_contiguous_columns():
    streams = batchify(torch.arange(26), 4)
    assert streams.shape == (6, 4)
    assert streams[:, 1].tolist() == [6, 7, 8, 9, 10, 11]


def test_windows_cover_every_target_once_and_continue_each_column():
    streams = batchify(torch.arange(26), 4)  # 6 rows -> 5 targets per column
    windows = [get_window(streams, i, 2) for i in range(num_windows(streams, 2))]
    assert [w[0].size(0) for w in windows] == [2, 2, 1]
    targets = torch.cat([t for _, t in windows])
    assert torch.equal(targets, streams[1:])
    for inputs, target in windows:
        assert torch.equal(target, inputs + 1)  # the next token of the same stream
    with pytest.raises(IndexError):
        get_window(streams, 3, 2)


def test_too_short_text_names_the_window_size():
    check_long_enough(12, 3, 3, what="the text")
    with pytest.raises(DataError, match="3 x \\(3 \\+ 1\\) = 12"):
        check_long_enough(11, 3, 3, what="the text")


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        batchify(torch.arange(5), 0)
    with pytest.raises(ValueError, match="bptt"):
        num_windows(torch.zeros(5, 1), 0)
