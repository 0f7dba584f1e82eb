"""The one registration pattern used for readers, writers, schemas, kernels and quantization rules.

Keys are small NamedTuples. Registering a key twice raises. When a key has a ``version``
field, :meth:`Registry.lookup` returns the entry with the newest version not above the one
asked for (the ONNX ``since_version`` rule), so an op schema or reader handler registered
``since`` opset 7 serves opsets 7..12 until a newer one is registered at 13.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from convertmodel.errors import UsageError

K = TypeVar("K", bound=tuple[Any, ...])
V = TypeVar("V")


class Registry(Generic[K, V]):
    """A mapping from NamedTuple keys to values, filled by decorators at import time."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[K, V] = {}
        # Versioned keys indexed by their other fields: lookup is a dict hit plus a short scan.
        self._versions: dict[tuple[Any, ...], list[tuple[int, V]]] = {}

    def add(self, key: K, value: V) -> V:
        if key in self._entries:
            raise KeyError(f"{self.what} {key!r} is registered twice")
        self._entries[key] = value
        fields = getattr(key, "_fields", ())
        if "version" in fields:
            vi = fields.index("version")
            base = tuple(key[i] for i in range(len(fields)) if i != vi)
            self._versions.setdefault(base, []).append((key[vi], value))
            self._versions[base].sort(key=lambda kv: kv[0])
        return value

    def register(self, key: K) -> Callable[[V], V]:
        """Decorator form of :meth:`add`."""

        def deco(value: V) -> V:
            return self.add(key, value)

        return deco

    def get(self, key: K) -> V | None:
        """Exact lookup; ``None`` when absent."""
        return self._entries.get(key)

    def lookup(self, key: K) -> V | None:
        """Exact lookup, or for versioned keys the newest version <= ``key.version``."""
        if key in self._entries:
            return self._entries[key]
        fields = getattr(key, "_fields", ())
        if "version" not in fields:
            return None
        vi = fields.index("version")
        base = tuple(key[i] for i in range(len(fields)) if i != vi)
        best: V | None = None
        for version, value in self._versions.get(base, ()):
            if version > key[vi]:
                break
            best = value
        return best

    def keys(self) -> list[K]:
        return list(self._entries)

    def items(self) -> list[tuple[K, V]]:
        return list(self._entries.items())

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def check_options(what: str, path: str, options: Mapping[str, object], known: Iterable[str]) -> None:
    """Reject options a reader or writer does not declare: one UsageError naming them and the accepted ones."""
    accepted = tuple(known)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(
            f"{path}: unknown {what} option(s) {', '.join(unknown)}; accepted: {', '.join(accepted) or 'none'}"
        )
