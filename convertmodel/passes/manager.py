"""Run a sequence of ``Graph -> Graph`` passes, logging op counts before and after each one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from convertmodel.ir.graph import Graph

log = logging.getLogger("convertmodel.passes")

GraphPass = Callable[[Graph], Graph]


@dataclass(frozen=True)
class PassRecord:
    """What one pass did: op counts before and after, and its wall time."""

    name: str
    before: dict[str, int]
    after: dict[str, int]
    seconds: float

    def changes(self) -> dict[str, int]:
        """Op types whose count changed, with the difference (after - before)."""
        keys = set(self.before) | set(self.after)
        diff = {k: self.after.get(k, 0) - self.before.get(k, 0) for k in keys}
        return {k: v for k, v in sorted(diff.items()) if v}


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def run_passes(
    graph: Graph,
    passes: Sequence[GraphPass | tuple[str, GraphPass]],
    records: list[PassRecord] | None = None,
    check: bool = False,
) -> Graph:
    """Apply ``passes`` in order. Each entry is a function or a ``(name, function)`` pair.

    Op counts before and after every pass go to the ``convertmodel.passes`` logger (INFO) and,
    when given, to ``records``. ``check=True`` runs the graph checker after every pass (tests).
    """
    for entry in passes:
        name, fn = entry if isinstance(entry, tuple) else (getattr(entry, "__name__", repr(entry)), entry)
        before = graph.op_counts()
        t0 = time.perf_counter()
        graph = fn(graph)
        dt = time.perf_counter() - t0
        after = graph.op_counts()
        rec = PassRecord(name, before, after, dt)
        if records is not None:
            records.append(rec)
        log.info("pass %s (%.3f s): before [%s] after [%s]", name, dt, _fmt(before), _fmt(after))
        if check:
            from convertmodel.ir.checker import check_graph

            check_graph(graph)
    return graph
