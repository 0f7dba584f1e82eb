"""Shape ops against onnxruntime, with shape-like inputs both constant (exact inference) and
fed at run time (honest-unknown inference, kernel reads the values)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from convertmodel.errors import InvalidModelError
from convertmodel.ir import GraphBuilder
from tests.helpers import assert_close, run_onnx_node
from tests.ops import check_against_ort, check_both, i64, infer_node, run_and_infer

I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min


# -- Reshape / Flatten / Transpose ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "target", "allowzero"),
    [
        ((2, 3, 4), (6, 4), 0),
        ((2, 3, 4), (0, -1), 0),
        ((2, 3, 4), (-1,), 0),
        ((2, 3, 4), (0, 0, 2, 2), 0),
        ((2, 3, 4), (4, -1, 3), 0),
        ((2, 3, 4), (2, 0, 1, -1), 0),
        ((2, 0, 4), (0, 4, 0), 1),  # allowzero: 0 is a real zero-size dim
        ((1, 12), (3, 4), 1),
    ],
)
def test_reshape(shape: tuple[int, ...], target: tuple[int, ...], allowzero: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    check_both("Reshape", {"x": x, "shape": i64(*target)}, ["shape"], opset=14, allowzero=allowzero)


@pytest.mark.parametrize(
    ("in_shape", "target", "expected"),
    [
        (("N", 3, 4, 4), (0, -1), ("N", 48)),
        (("N", 3, 4, 4), (-1, 48), ("N", 48)),
        (("N", 3, 4, 4), (0, 3, 16), ("N", 3, 16)),
        (("N", 512, 1, 1), (0, -1), ("N", 512)),
        (("N", 6), (-1, 3), (None, 3)),  # 2N rows: no Dim spells it, so unknown
        ((None, 6), (2, -1), (2, None)),
    ],
)
def test_reshape_infers_symbolic_dims(in_shape: tuple, target: tuple[int, ...], expected: tuple) -> None:
    (t,) = infer_node("Reshape", {"x": in_shape, "shape": i64(*target)})
    assert t.shape == expected


def test_reshape_of_unknown_rank_input() -> None:
    b = GraphBuilder("g")
    x = b.add_input("x", "float32", None)
    (y,) = b.add_node("Reshape", [x, b.add_const("s", i64(0, -1, 4))])
    b.mark_output(y)
    assert b.build().value_types[y].shape == (None, None, 4)


def test_reshape_with_run_time_shape_has_known_rank_only() -> None:
    (t,) = infer_node("Reshape", {"x": ("N", 3, 4, 4), "shape": (2,)})
    assert t.shape == (None, None)


@pytest.mark.parametrize(("shape", "target"), [((2, 3, 4), (5, -1)), ((2, 3), (4, 2)), ((2, 3), (-1, -1))])
def test_reshape_rejects_impossible_targets(shape: tuple[int, ...], target: tuple[int, ...]) -> None:
    with pytest.raises(InvalidModelError, match="Reshape 'node'"):
        infer_node("Reshape", {"x": shape, "shape": i64(*target)})


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten(axis: int, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    check_against_ort("Flatten", {"x": x}, axis=axis)


def test_flatten_symbolic_batch() -> None:
    (t,) = infer_node("Flatten", {"x": ("N", 256, 6, 6)})
    assert t.shape == ("N", 9216)
    (t,) = infer_node("Flatten", {"x": ("N", 256, None, 6)}, axis=2)
    assert t.shape == (None, None)


@pytest.mark.parametrize("perm", [None, (0, 2, 3, 1), (3, 1, 0, 2), (0, 1, 2, 3)])
def test_transpose(perm: tuple[int, ...] | None, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    attrs: dict[str, Any] = {} if perm is None else {"perm": list(perm)}
    check_against_ort("Transpose", {"x": x}, **attrs)
    (t,) = infer_node("Transpose", {"x": ("N", 3, 4, 5)}, **attrs)
    assert t.shape == tuple(np.array(["N", 3, 4, 5], dtype=object)[list(perm or (3, 2, 1, 0))])


def test_transpose_rejects_a_non_permutation() -> None:
    with pytest.raises(InvalidModelError, match=r"Transpose 'node'.*perm"):
        infer_node("Transpose", {"x": (2, 3, 4)}, perm=[0, 0, 1])


# -- Squeeze / Unsqueeze / Concat / Split -----------------------------------------------------------------


@pytest.mark.parametrize("axes", [None, (0,), (-1,), (0, 3), (3, -4)])
def test_squeeze(axes: tuple[int, ...] | None, rng: np.random.Generator) -> None:
    x = rng.standard_normal((1, 3, 4, 1)).astype(np.float32)
    # A trailing omitted input is left out entirely: onnxruntime's Squeeze rejects an empty name there.
    inputs = {"x": x} if axes is None else {"x": x, "axes": i64(*axes)}
    check_both("Squeeze", inputs, ["axes"], opset=13)


def test_squeeze_without_axes_on_symbolic_dims_is_unknown() -> None:
    (t,) = infer_node("Squeeze", {"x": ("N", 1, 4)})
    assert t.shape is None
    (t,) = infer_node("Squeeze", {"x": ("N", 1, 4), "axes": i64(1)})
    assert t.shape == ("N", 4)


def test_squeeze_rejects_a_non_unit_axis() -> None:
    with pytest.raises(InvalidModelError, match="cannot squeeze axis 1"):
        infer_node("Squeeze", {"x": (1, 3), "axes": i64(1)})


@pytest.mark.parametrize("axes", [(0,), (-1,), (1, 3), (0, -1), (4, 0)])
def test_unsqueeze(axes: tuple[int, ...], rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    check_both("Unsqueeze", {"x": x, "axes": i64(*axes)}, ["axes"], opset=13)


def test_unsqueeze_symbolic_and_run_time_axes() -> None:
    (t,) = infer_node("Unsqueeze", {"x": ("N", 3), "axes": i64(-1, 1)})
    assert t.shape == ("N", 1, 3, 1)
    (t,) = infer_node("Unsqueeze", {"x": ("N", 3), "axes": (2,)})
    assert t.shape == (None, None, None, None)


@pytest.mark.parametrize(
    ("axis", "shapes"),
    [(1, [(2, 3, 4), (2, 1, 4), (2, 5, 4)]), (-1, [(2, 3), (2, 4)]), (0, [(1, 3), (2, 3), (3, 3)]), (0, [(4,)])],
)
def test_concat(axis: int, shapes: list[tuple[int, ...]], rng: np.random.Generator) -> None:
    inputs = {f"x{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate(shapes)}
    check_against_ort("Concat", inputs, axis=axis)


def test_concat_symbolic() -> None:
    (t,) = infer_node("Concat", {"a": ("N", 3, 8), "b": ("N", 5, 8)}, axis=1)
    assert t.shape == ("N", 8, 8)
    (t,) = infer_node("Concat", {"a": ("N", 3, None), "b": (None, 3, 8)}, axis=0)
    assert t.shape == (None, 3, 8)
    with pytest.raises(InvalidModelError, match=r"Concat 'node'.*dim 2 differs"):
        infer_node("Concat", {"a": (1, 3, 8), "b": (1, 3, 9)}, axis=1)


@pytest.mark.parametrize(
    ("shape", "axis", "split", "num_outputs"),
    [
        ((6, 4), 0, (2, 4), None),
        ((2, 7), -1, (1, 2, 4), None),
        ((2, 7), 1, None, 3),  # uneven: 3, 3, 1
        ((2, 8), 1, None, 3),  # uneven: 3, 3, 2
        ((6, 4), 0, None, 2),
        ((3, 5), 1, (0, 5), None),  # an empty part
    ],
)
def test_split(
    shape: tuple[int, ...], axis: int, split: tuple[int, ...] | None, num_outputs: int | None, rng: np.random.Generator
) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    n = len(split) if split else num_outputs
    assert n is not None
    attrs: dict[str, Any] = {"axis": axis}
    if num_outputs:
        attrs["num_outputs"] = num_outputs
    inputs = {"x": x, "split": None if split is None else i64(*split)}
    outs = check_both("Split", inputs, ["split"], n_outputs=n, **attrs)
    assert_close(np.concatenate(outs, axis=axis), x, rtol=0, atol=0)


def test_split_opset13_even_parts_and_symbolic_batch(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 6)).astype(np.float32)
    check_against_ort("Split", {"x": x}, opset=13, n_outputs=3, axis=1)
    types = infer_node("Split", {"x": ("N", 6)}, n_outputs=2, axis=1)
    assert [t.shape for t in types] == [("N", 3), ("N", 3)]


def test_split_rejects_sizes_that_do_not_add_up() -> None:
    with pytest.raises(InvalidModelError, match=r"Split 'node'.*does not cut dim 6"):
        infer_node("Split", {"x": (2, 6), "split": i64(2, 2)}, n_outputs=2, axis=1)


# -- Slice ------------------------------------------------------------------------------------------------

SLICE_CASES = [
    # (starts, ends, axes, steps)
    ((1,), (3,), (0,), None),
    ((0, 1), (2, -1), None, None),
    ((-1,), (I64_MIN,), (1,), (-1,)),  # full reverse
    ((5,), (0,), (1,), (-2,)),  # negative step, start clamped to dim - 1
    ((2,), (-100,), (-1,), (-1,)),
    ((0,), (1000,), (2,), (2,)),  # end out of range: clamped
    ((-1000,), (I64_MAX,), (0,), (1,)),
    ((3,), (1,), (1,), (1,)),  # empty result
    ((1, 0, -2), (-1, 5, 0), (2, 0, 1), (1, 2, -1)),
]


@pytest.mark.parametrize(("starts", "ends", "axes", "steps"), SLICE_CASES)
def test_slice(starts: tuple, ends: tuple, axes: tuple | None, steps: tuple | None, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    inputs = {
        "x": x,
        "starts": i64(*starts),
        "ends": i64(*ends),
        "axes": None if axes is None else i64(*axes),
        "steps": None if steps is None else i64(*steps),
    }
    check_both("Slice", inputs, ["starts", "ends", "axes", "steps"], opset=13)


def test_slice_symbolic_batch_and_partial_constants() -> None:
    (t,) = infer_node("Slice", {"x": ("N", 6, 5), "starts": i64(1), "ends": i64(-1), "axes": i64(1)})
    assert t.shape == ("N", 4, 5)
    # Only the sliced axis becomes unknown when starts are fed at run time.
    (t,) = infer_node("Slice", {"x": ("N", 6, 5), "starts": (1,), "ends": i64(3), "axes": i64(-1)})
    assert t.shape == ("N", 6, None)
    with pytest.raises(InvalidModelError, match=r"Slice 'node'.*step 0"):
        infer_node("Slice", {"x": (2, 3), "starts": i64(0), "ends": i64(2), "axes": i64(0), "steps": i64(0)})


# -- Pad --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize(
    ("pads", "axes"),
    [
        ((0, 0, 1, 2, 0, 0, 2, 1), None),
        ((1, 0, 0, 0, 0, 2), None),
        ((2, 1, 1, 2), (2, 3)),
        ((1, 1), (-1,)),
        ((0, 0, -1, 1, 0, 0, 2, -2), None),
    ],
)
def test_pad_modes(mode: str, pads: tuple[int, ...], axes: tuple[int, ...] | None, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4, 5) if len(pads) != 6 else (2, 3, 4)).astype(np.float32)
    inputs = {
        "x": x,
        "pads": i64(*pads),
        "value": np.array(1.5, np.float32) if mode == "constant" else None,
        "axes": None if axes is None else i64(*axes),
    }
    check_both("Pad", inputs, ["pads", "value", "axes"], opset=19, mode=mode)


def test_pad_default_value_and_symbolic_batch(rng: np.random.Generator) -> None:
    x = rng.integers(-5, 5, (2, 3)).astype(np.int64)
    check_against_ort("Pad", {"x": x, "pads": i64(1, 0, 0, 2)}, ["pads"], opset=18)
    (t,) = infer_node("Pad", {"x": ("N", 3, 4, 4), "pads": i64(0, 0, 1, 1, 0, 0, 1, 1)})
    assert t.shape == ("N", 3, 6, 6)
    (t,) = infer_node("Pad", {"x": ("N", 3, 4, 4), "pads": (8,)})
    assert t.shape == (None, None, None, None)


# -- Shape, Size, Gather, Expand, Tile, ConstantOfShape, Range --------------------------------------------


@pytest.mark.parametrize(("start", "end"), [(None, None), (1, None), (-2, None), (0, 2), (1, -1), (-10, 10), (3, 1)])
def test_shape(start: int | None, end: int | None, rng: np.random.Generator) -> None:
    attrs: dict[str, Any] = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    (got,) = check_against_ort("Shape", {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)}, opset=15, **attrs)
    assert got.dtype == np.int64
    (t,) = infer_node("Shape", {"x": ("N", 3, 4, 5)}, **attrs)
    assert t.shape == got.shape


def test_size(rng: np.random.Generator) -> None:
    check_against_ort("Size", {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)})


@pytest.mark.parametrize(
    ("axis", "indices"),
    [
        (0, i64(1, -1, 0)),
        (1, i64(-2)),
        (-1, np.array([[0, -1], [2, 1]])),
        (2, np.array(-3, np.int64)),
        (1, np.array([[1], [-3]], np.int32)),
    ],
)
def test_gather(axis: int, indices: np.ndarray, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    check_both("Gather", {"x": x, "idx": indices}, ["idx"], opset=13, axis=axis)


def test_gather_out_of_range_index_is_an_error(rng: np.random.Generator) -> None:
    with pytest.raises(InvalidModelError, match=r"Gather 'node'.*indices must lie in \[-3, 2\]"):
        run_and_infer("Gather", {"x": rng.standard_normal((3, 2)).astype(np.float32), "idx": i64(3)}, ["idx"])


@pytest.mark.parametrize(
    ("shape", "target"), [((3, 1), (2, 3, 4)), ((1, 4), (3, 1)), ((2, 3), (1,)), ((5,), (2, 1, 5)), ((), (2, 2))]
)
def test_expand_both_directions(shape: tuple[int, ...], target: tuple[int, ...], rng: np.random.Generator) -> None:
    x = rng.standard_normal(shape).astype(np.float32)
    check_both("Expand", {"x": x, "shape": i64(*target)}, ["shape"], opset=13)


@pytest.mark.parametrize("reps", [(1, 1), (2, 3), (3, 1)])
def test_tile(reps: tuple[int, int], rng: np.random.Generator) -> None:
    check_both("Tile", {"x": rng.standard_normal((2, 3)).astype(np.float32), "reps": i64(*reps)}, ["reps"], opset=13)
    (t,) = infer_node("Tile", {"x": ("N", 3), "reps": i64(*reps)})
    assert t.shape == ("N" if reps[0] == 1 else None, 3 * reps[1])


@pytest.mark.parametrize("value", [None, np.array([7], np.int64), np.array([2.5], np.float32)])
@pytest.mark.parametrize("const", [True, False])
def test_constant_of_shape(value: np.ndarray | None, const: bool) -> None:
    from onnx import numpy_helper

    shape = i64(2, 3, 1)
    onnx_attrs: dict[str, Any] = {} if value is None else {"value": numpy_helper.from_array(value)}
    (want,) = run_onnx_node("ConstantOfShape", {"shape": shape}, ["shape"] if const else [], opset=13, **onnx_attrs)
    ir_attrs: dict[str, Any] = {} if value is None else {"value": value}
    (got,), (t,) = run_and_infer("ConstantOfShape", {"shape": shape}, ["shape"] if const else [], **ir_attrs)
    assert got.dtype == want.dtype and t.dtype == str(want.dtype)
    assert_close(got, want, rtol=0, atol=0)
    assert t.shape == (want.shape if const else (None, None, None))


@pytest.mark.parametrize(("start", "limit", "delta"), [(0, 10, 3), (10, 0, -3), (5, 5, 1), (-2, 7, 2)])
@pytest.mark.parametrize("dtype", ["int64", "int32", "float32"])
def test_range(start: int, limit: int, delta: int, dtype: str) -> None:
    scale = 0.5 if dtype == "float32" else 1
    inputs = {k: np.array(v * scale, dtype) for k, v in (("s", start), ("l", limit), ("d", delta))}
    check_both("Range", inputs, ["s", "l", "d"], opset=13)
