"""Width and depth scaling: the one place every family rounds a width or scales a depth.

Widths follow the convention of the MobileNet/EfficientNet papers as implemented by timm
(``make_divisible``): scale, round to the nearest multiple of ``divisor`` and never round down by
more than 10 %. Depths follow EfficientNet's compound scaling: ``ceil(n * depth_mult)``, never
below one block.
"""
from __future__ import annotations

import math

from .arguments import ARGUMENTS


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``, default
    ``divisor``), bumping up one step if rounding lost more than ``1 - round_limit`` of ``v``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return int(new_v)


def scale_width(channels: int, width_mult: float = 1.0, divisor: int = 8,
                min_value: int | None = None) -> int:
    """Width of a layer of ``channels`` at ``width_mult``, rounded by :func:`make_divisible`.

    ``width_mult == 1`` returns ``channels`` unchanged, so reference layouts whose widths are not
    multiples of ``divisor`` (Inception's 192/208/...) are reproduced exactly.
    """
    width_mult = ARGUMENTS["width_mult"]("width_mult", width_mult)
    if width_mult == 1.0:
        return int(channels)
    return make_divisible(channels * width_mult, divisor, min_value)


def scale_depth(num_blocks: int, depth_mult: float = 1.0) -> int:
    """Number of blocks of a stage of ``num_blocks`` at ``depth_mult``: ``max(1, ceil(n * d))``."""
    depth_mult = ARGUMENTS["depth_mult"]("depth_mult", depth_mult)
    return max(1, int(math.ceil(num_blocks * depth_mult - 1e-9)))

