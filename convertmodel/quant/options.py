"""Typed quantization settings and decisions: what the caller asks for and what the pass did.

:class:`QuantizeOptions` travels from the CLI (or Python) to the quantize pass unchanged; the pass
returns its decisions as a :class:`QuantizationInfo`, stored in the graph's metadata as canonical
JSON (:meth:`QuantizationInfo.to_metadata`) and read back in one place
(:meth:`QuantizationInfo.of`). Nothing else parses ``metadata["quantization"]``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from convertmodel.errors import InvalidModelError, UsageError
from convertmodel.quant.scheme import BIGDL_INPUT_LEVELS, BIGDL_WEIGHT_LEVELS, DEFAULT_INPUT_LEVELS, WEIGHT_LEVELS

#: ``graph.metadata`` key holding :meth:`QuantizationInfo.to_metadata`.
METADATA_KEY = "quantization"
SCHEME = "bigdl-local-window"
COMPAT_MODES = ("bigdl",)


def parse_patterns(exclude: str | Iterable[str] | None) -> tuple[str, ...]:
    """Exclude patterns from repeated and/or comma-separated values, blanks dropped."""
    if exclude is None:
        return ()
    items = [exclude] if isinstance(exclude, str) else list(exclude)
    return tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())


def pattern_matches(pattern: str, name: str, *op_types: str) -> bool:
    """Does an exclude ``pattern`` (fnmatch glob) name the layer ``name`` or one of its ``op_types``?

    A name matches the whole name or a run of its ``/``-separated scopes, so ``conv1`` matches
    ``conv1/BiasAdd`` and ``model/conv1/Conv2D`` (not ``conv10``); op types match case-insensitively.
    """
    if any(fnmatch.fnmatchcase(t.lower(), pattern.lower()) for t in op_types):
        return True
    return any(fnmatch.fnmatchcase(name, g) for g in (pattern, f"{pattern}/*", f"*/{pattern}", f"*/{pattern}/*"))


@dataclass(frozen=True)
class Levels:
    """The levels of one layer: ``input`` L of the per-patch input windows (1..255) and ``weight``.

    ``weight`` is 127 (the stored int8 weights as they are) or fewer: the 127-level weights
    re-quantized to that many levels, as BigDL did at load time (64 with ``compat="bigdl"``).
    """

    input: int = DEFAULT_INPUT_LEVELS
    weight: int = WEIGHT_LEVELS

    def __post_init__(self) -> None:
        if not 1 <= int(self.input) <= 255:
            raise UsageError(f"quantize: input levels must be in 1..255 (uint8 codes), got {self.input}")
        if not 1 <= int(self.weight) <= WEIGHT_LEVELS:
            raise UsageError(f"quantize: weight levels must be in 1..{WEIGHT_LEVELS} (int8), got {self.weight}")


@dataclass(frozen=True)
class QuantizeOptions:
    """What to quantize and how (all optional; the defaults quantize every layer that has a rule).

    ``exclude``: layer names or op types kept fp32 (fnmatch globs, case-insensitive for op types;
    comma-separated values are split). ``fp32_layers``: exact layer names kept fp32 (what the
    accuracy-aware fallback chooses; no glob escaping). ``compat="bigdl"``: BigDL 0.3's numerics
    (127 input levels, weights re-quantized to 64 levels). ``input_levels``: L of the input windows
    (default 255, or 127 with compat). ``layer_levels``: per-layer :class:`Levels` by pattern (first
    match wins) for layers that differ from the model-wide default. ``quantize_depthwise``: quantize
    depthwise convolutions (C/G = 1) too; None (the default) keeps them fp32, where they run faster
    than the int8 kernel (docs/quantization.md section 10), except with ``compat="bigdl"`` (BigDL
    quantized them).
    """

    exclude: tuple[str, ...] = ()
    fp32_layers: tuple[str, ...] = ()
    compat: str | None = None
    input_levels: int | None = None
    layer_levels: tuple[tuple[str, Levels], ...] = ()
    quantize_depthwise: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exclude", parse_patterns(self.exclude))
        object.__setattr__(self, "fp32_layers", tuple(self.fp32_layers))
        object.__setattr__(self, "compat", self.compat or None)
        if self.compat not in (None, *COMPAT_MODES):
            raise UsageError(f"quantize: unknown compat mode {self.compat!r}; supported: {', '.join(COMPAT_MODES)}")
        _ = self.levels  # validates input_levels

    @property
    def levels(self) -> Levels:
        """The model-wide levels: ``input_levels`` or the compat mode's, and the compat mode's weights."""
        bigdl = self.compat == "bigdl"
        default_in = BIGDL_INPUT_LEVELS if bigdl else DEFAULT_INPUT_LEVELS
        return Levels(
            default_in if self.input_levels is None else int(self.input_levels),
            BIGDL_WEIGHT_LEVELS if bigdl else WEIGHT_LEVELS,
        )

    @property
    def keeps_depthwise(self) -> bool:
        """Whether depthwise convolutions stay fp32 (``quantize_depthwise``, else not with compat)."""
        q = self.quantize_depthwise
        return not (self.compat == "bigdl" if q is None else bool(q))

    def levels_for(self, layer: str) -> Levels:
        for pattern, lv in self.layer_levels:
            if fnmatch.fnmatchcase(layer, pattern):
                return lv
        return self.levels

    def kept_because(self, name: str, *op_types: str) -> str | None:
        """Why the layer ``name`` stays fp32 by request, or None.

        ``op_types``: the layer's op type as the user sees it (``inspect``) and, when an import or
        fold step changed it (MatMul + Add -> Gemm), the type it has now; a pattern may name either.
        """
        if name in self.fp32_layers:
            return "kept fp32 by the accuracy-aware fallback"
        for p in self.exclude:
            if pattern_matches(p, name, *op_types):
                return f"excluded by pattern {p!r}"
        return None

    def with_fp32_layers(self, layers: Iterable[str]) -> QuantizeOptions:
        return replace(self, fp32_layers=tuple(layers))


@dataclass(frozen=True)
class KeptLayer:
    """A layer with an int8 rule that stayed fp32, and why."""

    op: str
    reason: str


@dataclass(frozen=True)
class QuantizationInfo:
    """The decisions of one quantize run, as stored in ``graph.metadata["quantization"]``."""

    input_levels: int
    weight_levels: int
    compat: str | None = None
    excluded: tuple[str, ...] = ()
    quantized: Mapping[str, int] = field(default_factory=dict)  # quantized layers per QOp type
    kept: Mapping[str, KeptLayer] = field(default_factory=dict)
    fused_relu: int = 0
    folded: int = 0  # BatchNormalization / ChannelAffine folded into the layer before
    fp32_ops: Mapping[str, int] = field(default_factory=dict)  # ops without an int8 rule, by type
    fp32_layers: tuple[str, ...] = ()
    layer_levels: Mapping[str, Levels] = field(default_factory=dict)  # layers not at the default levels
    scheme: str = SCHEME

    @property
    def layers_quantized(self) -> int:
        return int(sum(self.quantized.values()))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "scheme": self.scheme,
            "input_levels": self.input_levels,
            "weight_levels": self.weight_levels,
            "compat": self.compat,
            "excluded": list(self.excluded),
            "counts": {
                "quantized": dict(self.quantized),
                "kept_fp32": len(self.kept),
                "fused_relu": self.fused_relu,
                "folded": self.folded,
            },
            "kept": {k: {"op": v.op, "reason": v.reason} for k, v in self.kept.items()},
            "fp32_ops": dict(sorted(self.fp32_ops.items())),
        }
        # Keys added after the first release are written only when used (files stay byte-identical).
        if self.fp32_layers:
            d["fp32_layers"] = list(self.fp32_layers)
        if self.layer_levels:
            d["layer_levels"] = {k: {"input": v.input, "weight": v.weight} for k, v in self.layer_levels.items()}
        return d

    def to_metadata(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_metadata(cls, text: str) -> QuantizationInfo:
        """Parse :meth:`to_metadata`'s JSON; InvalidModelError naming what is wrong."""
        try:
            d = json.loads(text)
            counts = d.get("counts", {})
            return cls(
                scheme=str(d["scheme"]),
                input_levels=int(d["input_levels"]),
                weight_levels=int(d["weight_levels"]),
                compat=d.get("compat"),
                excluded=tuple(str(p) for p in d.get("excluded", ())),
                quantized={str(k): int(v) for k, v in counts.get("quantized", {}).items()},
                kept={str(k): KeptLayer(str(v["op"]), str(v["reason"])) for k, v in d.get("kept", {}).items()},
                fused_relu=int(counts.get("fused_relu", 0)),
                folded=int(counts.get("folded", 0)),
                fp32_ops={str(k): int(v) for k, v in d.get("fp32_ops", {}).items()},
                fp32_layers=tuple(str(x) for x in d.get("fp32_layers", ())),
                layer_levels={
                    str(k): Levels(int(v["input"]), int(v["weight"])) for k, v in d.get("layer_levels", {}).items()
                },
            )
        except (ValueError, TypeError, KeyError, AttributeError, UsageError) as e:
            raise InvalidModelError(f"metadata[{METADATA_KEY!r}] is not a valid quantization record: {e!r}") from None

    @classmethod
    def of(cls, metadata: Mapping[str, str]) -> QuantizationInfo | None:
        """The record in a graph's metadata, or None for a graph the quantize pass did not make."""
        text = metadata.get(METADATA_KEY)
        return None if not text else cls.from_metadata(text)
