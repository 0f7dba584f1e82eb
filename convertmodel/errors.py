"""Exception types of convertmodel and the exit codes the CLI maps them to.

Every error a user can cause derives from :class:`ConvertModelError`. Messages name the
file, the layer and op, what was expected and what was found, and what *is* supported.
The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Documented exit codes (docs/cli.md). Keep in sync with the table there.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_UNSUPPORTED = 3
EXIT_INVALID_MODEL = 4
EXIT_CORRUPT_FILE = 5
EXIT_ACCURACY_GATE = 6
EXIT_IO = 7
EXIT_DATA = 8
EXIT_INTERRUPTED = 130


class ConvertModelError(Exception):
    """Base class of every error convertmodel raises on bad input."""

    exit_code: int = EXIT_INTERNAL


class UnsupportedOpError(ConvertModelError, NotImplementedError):
    """The model uses op or layer types convertmodel cannot convert.

    Raised once per model after a full scan, listing every unsupported type with its
    count and the first few node names.
    """

    exit_code = EXIT_UNSUPPORTED

    def __init__(
        self,
        source: str,
        unsupported: Mapping[str, list[str]],
        supported: Iterable[str] = (),
        what: str = "op",
    ) -> None:
        self.source = source
        self.unsupported = {k: list(v) for k, v in unsupported.items()}
        parts = []
        for op_type in sorted(self.unsupported):
            names = self.unsupported[op_type]
            shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
            parts.append(f"{op_type} x{len(names)} ({shown})")
        sup = sorted(set(supported))
        tail = f"; supported: {', '.join(sup)}" if sup else ""
        super().__init__(f"{source}: unsupported {what} types: {'; '.join(parts)}{tail}")


class InvalidModelError(ConvertModelError, ValueError):
    """The model is structurally wrong: bad shapes, missing weights, dangling edges."""

    exit_code = EXIT_INVALID_MODEL


class DataError(InvalidModelError):
    """The data does not fit the model: wrong input shape or dtype, a missing input, labels that do not
    match the outputs, samples of different sizes, a metric the data cannot give.

    A subclass of :class:`InvalidModelError` (code that caught that before still does), with its own
    exit code: the model is fine, the input is not.
    """

    exit_code = EXIT_DATA


class FormatError(ConvertModelError):
    """A file is corrupt, truncated or not of the format it claims; carries file and offset."""

    exit_code = EXIT_CORRUPT_FILE

    def __init__(self, path: str, message: str, offset: int | None = None) -> None:
        self.path = path
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{path}{where}: {message}")


class AccuracyGateError(ConvertModelError):
    """``verify`` measured an accuracy drop larger than the allowed budget."""

    exit_code = EXIT_ACCURACY_GATE


class ModelIOError(ConvertModelError, OSError):
    """A file could not be read or written (missing, permissions, disk full)."""

    exit_code = EXIT_IO


class UsageError(ConvertModelError, ValueError):
    """The caller asked for something that does not exist: an unknown option, format or mode."""

    exit_code = EXIT_USAGE
