"""README examples run as written.

Convention (for whoever edits README.md): every fenced ```bash block is run, unless the line just
before its fence is ``<!-- not-run -->``. In a block, each line (comments dropped) is split on
``&&``; every part that starts with ``convertmodel`` runs through the real CLI entry point in a
scratch directory where ``fixtures/`` is the repository's, and must exit 0. Other parts (pip,
pytest, scripts) are setup and are not run here.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

from tests.cli import run_cli
from tests.helpers import REPO

NOT_RUN = "<!-- not-run -->"


def readme_commands(text: str) -> list[str]:
    """The ``convertmodel ...`` commands of the README's runnable bash blocks, in order."""
    commands = []
    for m in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before == NOT_RUN:
            continue
        for line in m.group(1).splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            commands += [p.strip() for p in line.split("&&") if p.strip().startswith("convertmodel ")]
    return commands


def test_readme_convention_is_parsed() -> None:
    text = "x\n```bash\npip install . && convertmodel inspect a.q8  # note\n# c\n```\n<!-- not-run -->\n```bash\nconvertmodel bench b\n```\n"
    assert readme_commands(text) == ["convertmodel inspect a.q8"]


def test_readme_examples_run_as_written(tmp_path: Any, monkeypatch: Any, capsys: Any) -> None:
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    commands = readme_commands(text)
    assert commands, "README.md has no runnable convertmodel example"
    os.symlink(os.path.join(REPO, "fixtures"), tmp_path / "fixtures")
    monkeypatch.chdir(tmp_path)
    for cmd in commands:
        code, _, err = run_cli(shlex.split(cmd)[1:], capsys)
        assert code == 0, f"{cmd}\n-> exit {code}: {err}"
