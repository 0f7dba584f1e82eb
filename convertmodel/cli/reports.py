"""The one JSON schema family of every command's report, and the JSON error object.

Every document a command prints with ``--json`` or writes with ``--report FILE`` has, besides its
command's fields: ``report_version``, ``tool`` {name, version}, ``created`` (UTC, ISO 8601),
``command`` (convert, quantize, verify, bench, inspect, predict) and ``model`` {path, sha256}
(sha256 null for a directory or a ``zoo:`` model). A failed command in ``--json`` mode prints
instead ``error`` {type, message, exit_code} with the same header fields.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

import click

REPORT_VERSION = 1
#: Keys every document has (docs/cli.md "Conventions").
HEADER_KEYS = ("report_version", "tool", "created", "command", "model")


def _tool() -> dict[str, str]:
    from convertmodel import __version__

    return {"name": "convertmodel", "version": __version__}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def _sha256(path: str) -> str | None:
    from convertmodel.fsutil import file_sha256

    try:
        return file_sha256(path) if os.path.isfile(path) else None
    except OSError:
        return None


def command_context() -> click.Context | None:
    """The subcommand's context (None outside a command)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None and ctx.parent.parent is not None:
        ctx = ctx.parent
    return ctx if ctx is not None and ctx.parent is not None else None


def model_path() -> str | None:
    """The model the running command was given (positional MODEL or --in)."""
    ctx = command_context()
    if ctx is None:
        return None
    p = ctx.meta.get("model_path")
    if p is None:
        for key in ("model", "model_path", "src"):
            if isinstance(ctx.params.get(key), str):
                p = ctx.params[key]
                break
    return p if isinstance(p, str) else None


def header(command: str | None = None, model: str | None = None, *, sha256: bool = True) -> dict[str, Any]:
    """The header keys; ``sha256=False`` leaves the model's hash None (its caller has it already)."""
    ctx = command_context()
    cmd = command or (ctx.command.name if ctx is not None else None)
    path = model if model is not None else model_path()
    return {
        "report_version": REPORT_VERSION,
        "tool": _tool(),
        "created": _now(),
        "command": cmd,
        "model": None if path is None else {"path": path, "sha256": _sha256(path) if sha256 else None},
    }


def envelope(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with the header keys; a ``model`` the command already gave as a dict is kept (and completed).
    The model file is hashed at most once (not when the command's ``model`` dict has its sha256)."""
    doc = dict(report)
    own = doc.get("model")
    if isinstance(own, str) and own != model_path():
        head = header(model=own)
    else:
        head = header(sha256=not (isinstance(own, dict) and "sha256" in own))
    if isinstance(own, dict):
        head["model"] = {**(head["model"] or {}), **own}
    for k, v in head.items():
        if k == "model" or k not in doc:
            doc[k] = v
    return doc


def write_report(path: str, doc: dict[str, Any]) -> None:
    """The JSON report to ``path``, atomically (never over an input of the command)."""
    from convertmodel.cli.common import _default
    from convertmodel.fsutil import atomic_open

    with atomic_open(path, "w", report_inputs(), what="JSON report") as f:
        json.dump(doc, f, indent=2, sort_keys=True, default=_default)
        f.write("\n")


def report_inputs() -> list[str]:
    """The files the running command reads (its path parameters that exist), which a report must not replace."""
    ctx = command_context()
    if ctx is None:
        return []
    skip = {"out", "dst", "out_path", "fallback_out", "prototxt_out", "report"}
    return [v for k, v in ctx.params.items() if k not in skip and isinstance(v, str) and os.path.exists(v)]


def error_document(
    command: str | None, error: BaseException, exit_code: int, model: str | None = None
) -> dict[str, Any]:
    """The JSON error object of a failed command (``--json`` mode)."""
    doc = header(command, model)
    doc["error"] = {"type": type(error).__name__, "message": str(error), "exit_code": exit_code}
    return doc


def emit_error(st: Any, command: str | None, error: BaseException, exit_code: int) -> None:
    """Print the JSON error object on stdout unless a report already went there (one document per run)."""
    from convertmodel.cli.common import emit_json

    if st is not None and getattr(st, "emitted", False):
        return
    try:
        emit_json(error_document(command, error, exit_code, getattr(st, "model_path", None)))
    except Exception:  # the error path must never raise
        pass


def int8_backend() -> str:
    """Which int8 kernels run here: the native ISA path, or the numpy reference (and why)."""
    from convertmodel.runtime import native

    if not native.available():
        return "numpy reference (native extension not built: reinstall with a C++17 compiler, pip install -e .)"
    try:
        return f"native {native.isa()}"
    except Exception as e:
        return f"numpy reference ({e})"
