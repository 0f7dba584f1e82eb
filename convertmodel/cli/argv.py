"""Global options in any position: ``convertmodel verify m.q8 --data d --json`` = ``convertmodel --json verify ...``.

:func:`hoist_globals` moves ``--json``, ``--quiet``/``-q``, ``--debug`` and ``--report FILE`` found after the
command name to the front, where the group parses them (nothing after ``--`` is touched). Deprecated
spellings are rewritten with a warning: ``verify --json FILE`` (a file ending in ``.json``, or ``-``) is
``--report FILE``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

FLAGS = ("--json", "--quiet", "-q", "--debug")
#: Global options that take a value.
VALUED = ("--report",)


@dataclass
class Argv:
    """The normalized command line and what the error path needs to know before click has parsed it."""

    args: list[str]
    command: str | None = None
    json: bool = False
    debug: bool = False
    warnings: list[str] = field(default_factory=list)


def _is_report_file(token: str) -> bool:
    return token == "-" or (not token.startswith("-") and token.lower().endswith(".json"))


def hoist_globals(argv: list[str], takes_value: Callable[[str, str], bool] | None = None) -> Argv:
    """Move the global options to the front; see the module docstring.

    ``takes_value(command, option)`` says whether a command's option consumes the next token (its
    value is then never taken for a global option, and the positional MODEL is known).
    """
    front: list[str] = []
    rest: list[str] = []
    command: str | None = None
    seen_positional = False
    warnings: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            rest.extend(argv[i:])
            break
        name, eq, value = tok.partition("=")
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if command is None and not tok.startswith("-"):
            command = tok
            rest.append(tok)
        elif command == "verify" and name == "--json" and (eq or _deprecated_report(nxt, seen_positional)):
            path = value if eq else str(nxt)
            warnings.append(f"warning: 'verify --json {path}' is deprecated; use '--report {path}'")
            front += ["--report", path]
            i += 0 if eq else 1
        elif tok in FLAGS:
            front.append(tok)
        elif name in VALUED:
            front.append(tok)
            if not eq and nxt is not None:
                front.append(nxt)
                i += 1
        else:
            rest.append(tok)
            if command is not None and tok.startswith("-") and not eq and takes_value and takes_value(command, tok):
                if nxt is not None:
                    rest.append(nxt)
                    i += 1
            elif command is not None and not tok.startswith("-"):
                seen_positional = True
        i += 1
    json_out = "--json" in front or _report_value(front) == "-"
    return Argv(front + rest, command, json_out, "--debug" in front, warnings)


def _deprecated_report(nxt: str | None, seen_positional: bool) -> bool:
    """``verify --json X``: X is a report file when it ends in .json (or is -), or comes after MODEL."""
    if nxt is None:
        return False
    return _is_report_file(nxt) or (seen_positional and not nxt.startswith("-"))


def _report_value(front: list[str]) -> str | None:
    for i, tok in enumerate(front):
        if tok == "--report" and i + 1 < len(front):
            return front[i + 1]
        if tok.startswith("--report="):
            return tok.split("=", 1)[1]
    return None


def warn(messages: list[str]) -> None:
    for m in messages:
        print(m, file=sys.stderr)
