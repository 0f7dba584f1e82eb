"""CLI tests: every command through :func:`run_cli`, the one way tests call ``convertmodel``."""

from __future__ import annotations

import pytest

from convertmodel.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str, str]:
    """Run ``convertmodel ARGS`` in this process: (exit code, stdout, stderr); output empty without ``capsys``."""
    with pytest.raises(SystemExit) as ei:
        main(args)
    out, err = capsys.readouterr() if capsys is not None else ("", "")
    code = ei.value.code
    return (0 if code is None else int(code)), out, err
