"""A module's activity in Torch ``nn`` semantics (BigDL and Torch7): a value name (a tensor) or a list of
activities (a ``Table``), and the nesting cap both readers apply to containers."""

from __future__ import annotations

from typing import Union

Act = Union[str, list["Act"]]

#: Containers nested deeper than this are refused (a hostile file could recurse without end).
MAX_DEPTH = 64


def flatten_act(act: Act) -> list[str]:
    """The value names of an activity, depth first (iterative: a hostile file may nest deeply)."""
    flat: list[str] = []
    stack: list[Act] = [act]
    while stack:
        a = stack.pop(0)
        if isinstance(a, str):
            flat.append(a)
        else:
            stack[:0] = list(a)
    return flat
