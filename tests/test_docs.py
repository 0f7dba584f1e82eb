"""Docs generated from the registries stay in sync with the code."""

import subprocess
import sys

from tests.helpers import REPO


def test_ops_doc_is_current() -> None:
    r = subprocess.run([sys.executable, "scripts/gen_ops_doc.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
