"""Checking what the browser sends: each value parsed and bounded, or a :class:`ParamError`
(the app answers it with status 400 and its one line)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rnnkit.errors import RnnkitError


class ParamError(RnnkitError, ValueError):
    """A request parameter is missing, malformed or out of range."""


def text(params: Mapping[str, Any], name: str, *, limit: int) -> str:
    """The non-empty text ``params[name]`` of at most ``limit`` characters."""
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ParamError(f"{name} is missing; give some text")
    if len(value) > limit:
        raise ParamError(f"{name} has {len(value)} characters; the limit is {limit}")
    return value


def integer(
    params: Mapping[str, Any], name: str, default: int | None, *, low: int, high: int
) -> int | None:
    """The integer ``params[name]`` in ``[low, high]`` (``default`` when absent or empty)."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ParamError(f"{name} must be a whole number, got {str(value)[:40]!r}") from None
    if not low <= number <= high:
        raise ParamError(f"{name} must be between {low} and {high}, got {number}")
    return number


def real(
    params: Mapping[str, Any],
    name: str,
    default: float | None,
    *,
    low: float,
    high: float,
    open_low: bool = False,
) -> float | None:
    """The finite number ``params[name]`` in ``[low, high]`` (``(low, high]`` with
    ``open_low``; ``default`` when absent or empty)."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ParamError(f"{name} must be a number, got {str(value)[:40]!r}") from None
    too_low = number <= low if open_low else number < low
    if not math.isfinite(number) or too_low or number > high:
        bracket = "(" if open_low else "["
        raise ParamError(f"{name} must be in {bracket}{low}, {high}], got {str(value)[:40]}")
    return number


def flag(params: Mapping[str, Any], name: str) -> bool:
    """The yes/no ``params[name]`` (absent: no)."""
    value = str(params.get(name, "")).strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ParamError(f"{name} must be true or false, got {value[:40]!r}")
