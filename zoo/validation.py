"""One validation layer: every public entry point (the model builders, ``build``, ``fit``, ``load``,
the CLI) checks its arguments here, so a bad value fails before any work with one kind of message:

    ValueError: in_features=-1 is not accepted: expected an integer >= 1

The message names the argument, repeats the value and says what is accepted. Booleans are refused
where numbers are expected (``True`` is an ``int`` to Python, never a width to a user); NaN and
infinity are refused where a finite number is expected. Each function returns the value, converted
where the conversion is lossless (a NumPy integer to ``int``, ``"float32"`` to ``torch.float32``),
so callers write ``n = positive_int("n", n)``.

This module imports no torch at import time (``dtype`` and ``device`` import it when called): the
torch-free parts of the project may use it.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence


def _reject(name: str, value: Any, accepted: str) -> ValueError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ValueError(f"{name}={shown} is not accepted: expected {accepted}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` within ``[minimum, maximum]`` (either bound optional)."""
    accepted = "an integer" + (f" >= {minimum}" if minimum is not None else "") + \
        (f" and <= {maximum}" if maximum is not None and minimum is not None else
         f" <= {maximum}" if maximum is not None else "")
    if not _is_int(value):
        raise _reject(name, value, accepted)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _reject(name, value, accepted)
    return value


def positive_int(name: str, value: Any, *, maximum: int | None = None) -> int:
    """``value`` as an ``int >= 1`` (at most ``maximum`` when given)."""
    return integer(name, value, minimum=1, maximum=maximum)


def non_negative_int(name: str, value: Any, *, maximum: int | None = None) -> int:
    """``value`` as an ``int >= 0`` (at most ``maximum`` when given)."""
    return integer(name, value, minimum=0, maximum=maximum)


def number(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
           min_inclusive: bool = True, max_inclusive: bool = True) -> float:
    """``value`` as a finite ``float`` within the given bounds."""
    lo = "" if minimum is None else (f" {'>=' if min_inclusive else '>'} {minimum:g}")
    hi = "" if maximum is None else (f" {'<=' if max_inclusive else '<'} {maximum:g}")
    accepted = "a finite number" + lo + (" and" if lo and hi else "") + hi
    if not _is_real(value) or not math.isfinite(float(value)):
        raise _reject(name, value, accepted)
    value = float(value)
    if minimum is not None and (value < minimum or (not min_inclusive and value == minimum)):
        raise _reject(name, value, accepted)
    if maximum is not None and (value > maximum or (not max_inclusive and value == maximum)):
        raise _reject(name, value, accepted)
    return value


def positive_number(name: str, value: Any, *, maximum: float | None = None) -> float:
    """``value`` as a finite ``float > 0``."""
    return number(name, value, minimum=0.0, min_inclusive=False, maximum=maximum)


def fraction(name: str, value: Any, *, open_low: bool = False, open_high: bool = True) -> float:
    """``value`` as a float in ``[0, 1)`` by default (a dropout rate, a validation fraction)."""
    return number(name, value, minimum=0.0, maximum=1.0, min_inclusive=not open_low,
                  max_inclusive=not open_high)


def optional(check, name: str, value: Any, **kwargs):
    """``None`` passes through; anything else goes through ``check``."""
    return None if value is None else check(name, value, **kwargs)


def boolean(name: str, value: Any) -> bool:
    """``value`` as a ``bool`` (only ``True``/``False``; ``0``/``1`` are refused: say what you mean)."""
    if not isinstance(value, bool):
        raise _reject(name, value, "True or False")
    return value


def choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared by equality; unhashable values are refused)."""
    choices = tuple(choices)
    try:
        hash(value)
    except TypeError:
        raise _reject(name, value, f"one of {choices}") from None
    if isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
        raise _reject(name, value, f"one of {choices}")
    if value not in choices:
        raise _reject(name, value, f"one of {choices}")
    return value


def string(name: str, value: Any) -> str:
    """``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise _reject(name, value, "a non-empty string")
    return value


def shape(name: str, value: Any, *, ndim: int | Sequence[int] | None = None,
          maximum: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints (``ndim`` entries, or one of the ``ndim`` counts)."""
    dims = (ndim,) if isinstance(ndim, int) else (tuple(ndim) if ndim is not None else None)
    count = "" if dims is None else (f"{dims[0]} " if len(dims) == 1 else
                                     " or ".join(str(d) for d in dims) + " ")
    accepted = f"a tuple of {count}integers >= 1" + (f" and <= {maximum}" if maximum else "")
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _reject(name, value, accepted)
    if dims is not None and len(value) not in dims:
        raise _reject(name, value, accepted)
    if not value or not all(_is_int(v) and v >= 1 and (maximum is None or v <= maximum) for v in value):
        raise _reject(name, value, accepted)
    return tuple(int(v) for v in value)


def non_empty_sequence(name: str, value: Any) -> tuple:
    """``value`` as a non-empty tuple (a list or tuple; a string is not a sequence of choices here)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise _reject(name, value, "a non-empty list or tuple")
    return tuple(value)


_DTYPES = ("float32", "float64", "float16", "bfloat16")


def dtype(name: str, value: Any):
    """A floating ``torch.dtype``, from the dtype itself or its name (``"float32"``, ``"bf16"``...);
    ``None`` passes through (the default dtype)."""
    import torch

    if value is None:
        return None
    aliases = {"float": "float32", "fp32": "float32", "double": "float64", "fp64": "float64",
               "half": "float16", "fp16": "float16", "bf16": "bfloat16"}
    if isinstance(value, str):
        key = aliases.get(value, value)
        if key in _DTYPES:
            return getattr(torch, key)
    elif isinstance(value, torch.dtype) and value.is_floating_point:
        return value
    raise _reject(name, value, f"a floating torch.dtype or one of {_DTYPES}")


def device(name: str, value: Any):
    """A ``torch.device`` this build of torch can place tensors on (``cpu``, ``meta``, ``cuda[:i]``
    where CUDA is present); ``None`` passes through (the default device)."""
    import torch

    if value is None:
        return None
    accepted = "a torch.device or one of 'cpu', 'meta', 'cuda', 'cuda:N' (where CUDA is available)"
    if not isinstance(value, (str, torch.device)):
        raise _reject(name, value, accepted)
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise _reject(name, value, accepted) from None
    if dev.type not in ("cpu", "meta", "cuda"):
        raise _reject(name, value, accepted)
    if dev.type == "cuda" and (not torch.cuda.is_available() or
                               (dev.index is not None and dev.index >= torch.cuda.device_count())):
        raise _reject(name, value, accepted)
    return dev


SEED_MAX = 2**63 - 1


def seed(name: str, value: Any) -> int:
    """A random seed torch accepts: an integer in ``[0, 2**63 - 1]``."""
    return integer(name, value, minimum=0, maximum=SEED_MAX)
