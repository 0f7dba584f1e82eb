"""The import pipeline: what runs after every reader, the same for every source format.

Readers only translate (source file -> IR). This pipeline then evaluates constant subgraphs and
resolves shape computations (``fold_constants``), and removes inference no-ops and redundant layout
shuffles (``simplify``). :func:`convertmodel.load` runs it; either step can be turned off to see
the literal translation.
"""

from __future__ import annotations

from convertmodel.ir.graph import Graph
from convertmodel.passes.fold_constants import fold_constants as _fold_constants
from convertmodel.passes.manager import GraphPass, PassRecord, run_passes
from convertmodel.passes.simplify import simplify as _simplify

#: The import passes in order: (name, pass).
IMPORT_PASSES: tuple[tuple[str, GraphPass], ...] = (("fold_constants", _fold_constants), ("simplify", _simplify))


def import_pipeline(
    graph: Graph, *, fold_constants: bool = True, simplify: bool = True, records: list[PassRecord] | None = None
) -> Graph:
    """Run the import passes that are switched on (both by default) over a freshly read graph."""
    on = {"fold_constants": fold_constants, "simplify": simplify}
    return run_passes(graph, [p for p in IMPORT_PASSES if on[p[0]]], records)
