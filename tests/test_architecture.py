"""The layer order of docs/architecture.md, enforced: an import may only point down (or sideways).

Every module of the package is parsed with ``ast`` and every import is checked, the lazy ones
inside functions included (``import`` / ``from ... import`` anywhere in the file, also under
``if TYPE_CHECKING``). A planted back-import in a copy of the package shows the check can fail.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO as _REPO

PACKAGE = "convertmodel"
REPO = Path(_REPO)

#: Bottom up, as in docs/architecture.md. Packages in one tuple share a layer and may import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "registry", "fsutil", "limits"),
    ("ir",),
    ("quant",),
    ("serialize",),
    ("runtime",),
    ("passes",),
    ("readers", "zoo"),
    # Above readers: a writer may use its format's reader schema (readers/caffe/proto.py), never the reverse.
    ("writers",),
    ("data", "metrics"),
    ("engines", "verify", "bench", "bench_onnxruntime"),
    ("model", ""),  # "" is the package root: convertmodel/__init__.py (the public API, lazily model)
    ("cli", "__main__"),
)
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}
#: ``from convertmodel import NAME``: the part NAME comes from (the root loads these lazily).
ROOT_NAMES = {"Model": "model", "load": "model", "QuantizeOptions": "quant"}


def part_of(module: str) -> str:
    """The top-level part of ``convertmodel.x.y`` (``x``); ``""`` for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def target_part(module: str) -> str:
    """Like :func:`part_of`, but ``import convertmodel`` loads only the root's light names (bottom layer)."""
    return part_of(module) if module != PACKAGE else "errors"


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the file, at any depth, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
            if target == PACKAGE:
                # ``from convertmodel import model`` imports the submodule; ``Model``/``load`` come lazily
                # from convertmodel.model; the root's own names (errors, ``__version__``) are bottom layer.
                out.pop()
                subs = [a.name if a.name in LEVEL else ROOT_NAMES.get(a.name, "errors") for a in node.names]
                out += [(node.lineno, f"{PACKAGE}.{sub}") for sub in subs]
    return out


def violations(root: Path) -> list[str]:
    """Every import in the package at ``root`` that points to a higher layer, or to an unknown part."""
    bad: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(root, path)
        src = part_of(module)
        if src not in LEVEL:
            bad.append(f"{path}: package part {src!r} is in no layer of tests/test_architecture.py")
            continue
        for line, target in imports_of(path, module):
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            dst = target_part(target)
            if dst not in LEVEL:
                bad.append(f"{path}:{line}: imports {target}, a part in no layer")
            elif LEVEL[dst] > LEVEL[src]:
                bad.append(f"{path}:{line}: {module} (layer {src or 'root'}) imports {target} (higher layer {dst})")
    return bad


def test_imports_point_down() -> None:
    bad = violations(REPO / PACKAGE)
    assert not bad, "imports against the layer order (docs/architecture.md):\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("module", "code"),
    [
        ("quant/planted.py", "from convertmodel.runtime.executor import Executor\n"),
        ("ir/planted.py", "def f():\n    import convertmodel.readers.onnx\n"),
        ("runtime/planted.py", "def f():\n    from convertmodel import model\n"),
        ("readers/planted.py", "from ..writers import write_model\n"),
        ("verify/planted.py", "if True:\n    from convertmodel.cli.common import state\n"),
    ],
)
def test_planted_back_import_is_found(tmp_path: Path, module: str, code: str) -> None:
    root = tmp_path / PACKAGE
    shutil.copytree(REPO / PACKAGE, root, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.cpp", "*.h"))
    assert violations(root) == []
    (root / module).write_text(code, encoding="utf-8")
    bad = violations(root)
    assert len(bad) == 1 and module in bad[0], bad


def format_packages() -> set[str]:
    """The readers/ subpackages that are a source format's reader (a ``ReaderInfo`` module lives there)."""
    from convertmodel.readers import BUILTIN

    prefix = f"{PACKAGE}.readers."
    return {i.module[len(prefix) :].split(".")[0] for i in BUILTIN if i.module.startswith(prefix)}


def cross_format_imports(root: Path) -> list[str]:
    """Imports from one format's reader package into another's; what two formats share lives in a readers/
    package that is no format (readers/torchnn: Torch ``nn`` semantics, used by BigDL and Torch7)."""
    formats = format_packages()
    bad: list[str] = []
    for fmt in sorted(formats):
        for path in sorted((root / "readers" / fmt).rglob("*.py")):
            for line, target in imports_of(path, module_name(root, path)):
                parts = target.split(".")
                if parts[:2] == [PACKAGE, "readers"] and len(parts) > 2 and parts[2] in formats - {fmt}:
                    bad.append(f"{path}:{line}: the {fmt} reader imports {target}, another format's reader")
    return bad


def test_no_format_reader_imports_another() -> None:
    assert {"bigdl", "torch7", "onnx", "caffe", "tensorflow"} <= format_packages()
    bad = cross_format_imports(REPO / PACKAGE)
    assert not bad, "move what both formats use to a shared readers/ package:\n" + "\n".join(bad)


def test_planted_cross_format_import_is_found(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE
    shutil.copytree(REPO / PACKAGE, root, ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.cpp", "*.h"))
    (root / "readers" / "torch7" / "planted.py").write_text("from ..bigdl import storage\n", encoding="utf-8")
    bad = cross_format_imports(root)
    assert len(bad) == 1 and "planted.py" in bad[0] and "convertmodel.readers.bigdl" in bad[0], bad


def test_every_part_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in (REPO / PACKAGE).iterdir() if p.suffix == ".py" or p.is_dir()}
    parts = {p for p in parts if p not in ("__init__", "__pycache__")}
    assert parts <= set(LEVEL), f"add {sorted(parts - set(LEVEL))} to LAYERS and docs/architecture.md"


def test_no_test_module_imports_another() -> None:
    """Shared builders live in helper modules (tests/helpers.py, a package's __init__), not in test modules."""
    tests = REPO / "tests"
    bad = []
    for path in sorted(tests.rglob("*.py")):
        module = module_name(tests, path)
        for line, target in imports_of(path, module):
            leaf = target.rsplit(".", 1)[-1]
            if target.startswith("tests.") and (leaf.startswith("test_") or leaf == "conftest"):
                bad.append(f"{path}:{line}: imports {target}")
    assert not bad, "move what is shared into a helper module:\n" + "\n".join(bad)
