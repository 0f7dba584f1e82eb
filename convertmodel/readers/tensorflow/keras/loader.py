"""Keras files -> (model config, weights per layer), with h5py and zipfile only (no Keras, no TensorFlow).

* HDF5 ``.h5`` by Keras 2 and by Keras 3 (its legacy H5 format): the ``model_config`` attribute
  holds the JSON config; ``model_weights/<layer>`` lists its arrays in ``weight_names`` order.
* Keras 3 ``.keras``: a zip of ``config.json`` and ``model.weights.h5``, whose groups
  ``layers/<key>/vars/<i>`` are keyed by the layer's class name in snake case, deduplicated in layer
  order (``conv2d``, ``conv2d_1``, ...), as Keras' saving library names them.

Nothing in the file is executed: the config is plain JSON read as data.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from convertmodel.errors import FormatError, ModelIOError
from convertmodel.fsutil import read_head

#: The largest config.json / model.weights.h5 member a .keras zip may expand to, relative to the zip.
_EXPANSION = 8
_MIN_CAP = 256 << 20
_MODELS = ("Sequential", "Functional", "Model")


@dataclass
class KerasFile:
    config: dict[str, Any]
    #: Arrays of each layer (by layer name), in the layer's weight order.
    weights: dict[str, list[np.ndarray]]
    keras_version: str
    container: str  # "h5" or "keras"


def snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case`` (Conv2D -> conv2d, BatchNormalization -> batch_normalization)."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    s = re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()
    return s if not s.startswith("_") else "private" + s


def _json(data: bytes | str, path: str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(path, f"{what} is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise FormatError(path, f"{what} is not a JSON object")
    return obj


def layer_list(config: dict[str, Any]) -> list[dict[str, Any]]:
    inner = config.get("config")
    if isinstance(inner, dict):
        layers = inner.get("layers", [])
    else:
        layers = inner if isinstance(inner, list) else []  # Keras 1/2.0 Sequential: config is the list
    return [lyr for lyr in layers if isinstance(lyr, dict)]


def _h5py(path: str) -> Any:
    try:
        import h5py
    except ImportError as e:  # h5py is a core dependency; a broken install still gets one line
        raise ModelIOError(f"{path}: reading Keras files needs h5py (pip install h5py)") from e
    return h5py


def _h5_named_arrays(group: Any, path: str, layer: str) -> list[tuple[str, np.ndarray]]:
    out = []
    for n in group.attrs.get("weight_names", []):
        key = n.decode("utf-8") if isinstance(n, bytes) else str(n)
        if key not in group:
            raise FormatError(path, f"layer {layer!r}: weight {key!r} listed in weight_names is missing")
        out.append((key, np.asarray(group[key])))
    return out


def _h5_arrays(group: Any, path: str, layer: str) -> list[np.ndarray]:
    return [a for _, a in _h5_named_arrays(group, path, layer)]


def load_h5(path: str) -> KerasFile:
    h5py = _h5py(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise FormatError(path, f"not a readable HDF5 file (truncated or corrupt): {e}") from e
    try:
        with f:
            raw = f.attrs.get("model_config")
            if raw is None:
                hint = (
                    " (it holds weights only: save the whole model)"
                    if "layer_names" in f.attrs or "layers" in f
                    else ""
                )
                raise FormatError(path, f"HDF5 file has no Keras model_config{hint}")
            config = _json(raw, path, "model_config")
            version = f.attrs.get("keras_version", b"")
            version = version.decode() if isinstance(version, bytes) else str(version)
            g = f["model_weights"] if "model_weights" in f else f
            weights: dict[str, list[np.ndarray]] = {}
            for lyr in layer_list(config):
                name = str(lyr.get("config", {}).get("name", lyr.get("name", "")))
                if name not in g or not isinstance(g[name], h5py.Group):
                    continue
                if str(lyr.get("class_name")) in _MODELS:
                    # A nested model's group lists all its layers' arrays as "<layer>/<weight>".
                    for key, arr in _h5_named_arrays(g[name], path, name):
                        parts = key.split("/")
                        if len(parts) > 2 and parts[0] == name:  # Keras 3 prefixes a nested Sequential's name
                            parts = parts[1:]
                        weights.setdefault(f"{name}/{parts[0]}", []).append(arr)
                else:
                    weights[name] = _h5_arrays(g[name], path, name)
            return KerasFile(config, weights, version, "h5")
    except (OSError, KeyError, ValueError, RuntimeError) as e:  # h5py: damaged datasets or groups
        raise FormatError(path, f"damaged HDF5 content: {type(e).__name__}: {e}") from e


def _member(z: zipfile.ZipFile, name: str, path: str, cap: int) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError as e:
        raise FormatError(path, f"the .keras archive has no {name}") from e
    if info.file_size > cap:
        raise FormatError(path, f"{name} declares {info.file_size} bytes, more than this archive can hold")
    with z.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise FormatError(path, f"{name} expands past {cap} bytes")
    return data


def load_keras_zip(path: str) -> KerasFile:
    cap = max(_MIN_CAP, _EXPANSION * os.path.getsize(path))
    try:
        with zipfile.ZipFile(path) as z:
            config = _json(_member(z, "config.json", path, cap), path, "config.json")
            meta = (
                _json(_member(z, "metadata.json", path, cap), path, "metadata.json")
                if "metadata.json" in z.namelist()
                else {}
            )
            blob = _member(z, "model.weights.h5", path, cap) if "model.weights.h5" in z.namelist() else b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as e:
        raise FormatError(path, f"not a readable .keras zip (truncated or corrupt): {e}") from e
    except (OSError, ValueError) as e:  # zlib errors, CRC mismatches
        raise FormatError(path, f"damaged .keras archive: {type(e).__name__}: {e}") from e
    weights: dict[str, list[np.ndarray]] = {}
    if blob:
        h5py = _h5py(path)
        try:
            with h5py.File(io.BytesIO(blob), "r") as w:
                _walk_vars(config, w["layers"] if "layers" in w else None, "", weights, 0)
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            raise FormatError(path, f"model.weights.h5 in the archive is damaged: {type(e).__name__}: {e}") from e
    return KerasFile(config, weights, str(meta.get("keras_version", "")), "keras")


def _walk_vars(config: dict[str, Any], root: Any, scope: str, weights: dict[str, list[np.ndarray]], depth: int) -> None:
    """Weights of ``config``'s layers (and of nested models' layers, as ``<model>/<layer>``)."""
    used: dict[str, int] = {}
    for lyr in layer_list(config):
        key = snake_case(str(lyr.get("class_name", "")))
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        name = str(lyr.get("config", {}).get("name", ""))
        if root is None or key not in root:
            continue
        if str(lyr.get("class_name")) in _MODELS and "layers" in root[key] and depth < 8:
            _walk_vars(lyr, root[key]["layers"], f"{scope}{name}/", weights, depth + 1)
        elif "vars" in root[key]:
            v = root[key]["vars"]
            weights[scope + name] = [np.asarray(v[str(i)]) for i in range(len(v))]


def load(path: str) -> KerasFile:
    head = read_head(path, 8)
    if head.startswith(b"PK"):
        return load_keras_zip(path)
    if head.startswith(b"\x89HDF"):
        return load_h5(path)
    raise FormatError(path, "is neither an HDF5 (.h5) nor a zip (.keras) Keras file")
