"""Fixtures of the forecasting tests (helpers: forecast_series.py)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _keep_torch_threads():
    """``--threads 1`` sets torch's global thread count; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
