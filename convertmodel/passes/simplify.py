"""Graph clean-up: remove inference no-ops and redundant layout shuffles (pure rewrites).

* Identity, Dropout (mask unused), Cast to the same type, Reshape/Flatten that keep a static
  shape unchanged: consumers read the input directly.
* Transpose of a constant: the constant is transposed once here.
* Transpose(Transpose(x, p1), p2): composed into one Transpose, or removed when the composition
  is the identity; a Transpose is pushed through elementwise ops (constants re-laid out) when
  that makes it meet another one; a Transpose before a flattening Reshape feeding a MatMul with
  a constant weight is folded into the weight's row order. tf2onnx wraps each NHWC op with
  NHWC->NCHW / NCHW->NHWC transposes and leaves such pairs between consecutive ops.

Graph inputs and outputs keep their names and layout: when a removed node's output is a graph
output, the producer of its input is renamed to the public name instead.
"""

from __future__ import annotations

import numpy as np

from convertmodel.ir.graph import Graph, Node, prune

#: Elementwise single-input ops a Transpose commutes with (their attributes are layout-free scalars).
_UNARY = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Elu",
        "Selu",
        "HardSigmoid",
        "HardSwish",
        "Abs",
        "Neg",
        "Exp",
        "Log",
        "Sqrt",
        "Softplus",
        "Softsign",
        "Clip",
        "Identity",
        "Erf",
        "Floor",
        "Ceil",
        "Reciprocal",
        "Sign",
    }
)


#: Binary elementwise ops with numpy broadcasting (a constant operand can be re-laid out).
_BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"})


def _compose(p1: tuple[int, ...], p2: tuple[int, ...]) -> tuple[int, ...]:
    # y = transpose(transpose(x, p1), p2)  =>  y = transpose(x, [p1[p2[i]]])
    return tuple(p1[i] for i in p2)


def _perm(node: Node, rank: int | None) -> tuple[int, ...] | None:
    p = node.attrs.get("perm")
    if p:
        return tuple(int(v) for v in p)  # type: ignore[union-attr]
    return None if rank is None else tuple(reversed(range(rank)))  # ONNX default: reverse the axes


class _Rewriter:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.outputs = {o.name for o in g.outputs}
        self.inputs = {i.name for i in g.inputs}
        self.consts = dict(g.constants)
        self.producers = g.producers()
        self.consumers = g.consumers()

    def bypass(self, nodes: list[Node], node: Node, src: str) -> bool:
        """Remove ``node`` (single output) so its consumers read ``src``. False when not possible."""
        out = node.outputs[0]
        if out not in self.outputs:
            self._rename(nodes, {out: src}, drop=node)
            return True
        # The output is public: rename the producer of src instead, if src is private.
        prod = self.producers.get(src)
        if prod is None or src in self.outputs or src in self.inputs:
            return False
        self._rename(nodes, {src: out}, drop=node, rename_outputs=True)
        return True

    def _rename(self, nodes: list[Node], mapping: dict[str, str], drop: Node, rename_outputs: bool = False) -> None:
        for k, n in enumerate(nodes):
            if n is drop:
                continue
            ins = tuple(mapping.get(i, i) for i in n.inputs)
            outs = tuple(mapping.get(o, o) for o in n.outputs) if rename_outputs else n.outputs
            if ins != n.inputs or outs != n.outputs:
                nodes[k] = n.with_(inputs=ins, outputs=outs)
        nodes.remove(drop)

    def rank(self, value: str) -> int | None:
        t = self.g.value_types.get(value)
        return None if t is None else t.rank

    def static_shape(self, value: str) -> tuple[int, ...] | None:
        t = self.g.value_types.get(value)
        return t.shape if t is not None and t.is_static() else None  # type: ignore[return-value]

    def step(self) -> Graph | None:
        """Apply the first applicable rewrite; None when nothing applies."""
        nodes = list(self.g.nodes)
        for node in self.g.nodes:
            op = node.op_type
            if node.domain:
                continue
            if op == "Identity" or (op == "Dropout" and (len(node.outputs) < 2 or not self._used(node.outputs[1]))):
                if self.bypass(nodes, node, node.inputs[0]):
                    return self._graph(nodes)
            elif op == "Cast":
                t = self.g.value_types.get(node.inputs[0])
                u = self.g.value_types.get(node.outputs[0])
                if t is not None and u is not None and t.dtype == u.dtype and self.bypass(nodes, node, node.inputs[0]):
                    return self._graph(nodes)
            elif op in ("Reshape", "Flatten"):
                a, b = self.static_shape(node.inputs[0]), self.static_shape(node.outputs[0])
                if a is not None and a == b and self.bypass(nodes, node, node.inputs[0]):
                    return self._graph(nodes)
            elif op == "Transpose":
                g = self._transpose(nodes, node)
                if g is not None:
                    return g
        return None

    def _used(self, value: str) -> bool:
        return bool(value) and (value in self.outputs or bool(self.consumers.get(value)))

    def _transpose(self, nodes: list[Node], node: Node) -> Graph | None:
        x = node.inputs[0]
        perm = _perm(node, self.rank(x))
        if perm is None:
            return None
        if perm == tuple(range(len(perm))):
            if self.bypass(nodes, node, x):
                return self._graph(nodes)
            # A public output fed straight from a graph input: keep the name with a cheap Identity.
            nodes[nodes.index(node)] = Node("Identity", node.name, node.inputs, node.outputs)
            return self._graph(nodes)
        if x in self.consts and node.outputs[0] not in self.outputs:
            name = node.outputs[0]
            self.consts[name] = np.ascontiguousarray(np.transpose(self.consts[x], perm))
            nodes.remove(node)
            return self._graph(nodes)
        pushed = self._push_down(nodes, node, perm)
        if pushed is not None:
            return pushed
        folded = self._fold_into_matmul(nodes, node, perm)
        if folded is not None:
            return folded
        prev = self.producers.get(x)
        if prev is None or prev.op_type != "Transpose" or prev.domain:
            return None
        p1 = _perm(prev, self.rank(prev.inputs[0]))
        if p1 is None or len(p1) != len(perm):
            return None
        composed = _compose(p1, perm)
        k = nodes.index(node)
        nodes[k] = node.with_(inputs=(prev.inputs[0],), attrs={"perm": composed})
        # The merged node may now be the identity; the next step removes it.
        return self._graph(nodes)

    def _fresh(self, nodes: list[Node], base: str) -> str:
        taken = {o for n in nodes for o in n.outputs} | set(self.consts) | self.inputs
        name = base
        while name in taken:
            name += "_"
        return name

    def _elementwise_use(self, value: str) -> tuple[Node, str | None] | None:
        """The single consumer of ``value`` if it is elementwise in ``value`` (unary, or binary whose other
        input is a constant of rank <= value's rank), with that constant's name."""
        users = self.consumers.get(value, [])
        if len(users) != 1 or value in self.outputs:
            return None
        u = users[0]
        if u.domain or not u.outputs:
            return None
        if u.op_type in _UNARY and u.inputs[0] == value and all(i in self.consts for i in u.inputs[1:] if i):
            return u, None
        if u.op_type in _BINARY and len(u.inputs) == 2 and value in u.inputs:
            other = u.inputs[1] if u.inputs[0] == value else u.inputs[0]
            rank = self.rank(value)
            if other != value and other in self.consts and rank is not None and self.consts[other].ndim <= rank:
                return u, other
        return None

    def _leads_to_transpose(self, value: str) -> bool:
        for _ in range(len(self.g.nodes)):
            users = self.consumers.get(value, [])
            if len(users) == 1 and users[0].op_type == "Transpose" and not users[0].domain:
                return value not in self.outputs
            hit = self._elementwise_use(value)
            if hit is None:
                return False
            value = hit[0].outputs[0]
        return False

    def _push_down(self, nodes: list[Node], node: Node, perm: tuple[int, ...]) -> Graph | None:
        """T(x) -> Op -> ... -> T2  becomes  Op' -> T -> ... -> T2 when a chain of elementwise ops leads to
        another Transpose, so the two meet and cancel (tf2onnx leaves NHWC<->NCHW pairs around BiasAdd,
        Relu and friends). A constant operand c is re-laid out: Op(transpose(x, p), c) equals
        transpose(Op(x, c'), p) with c' = transpose(c broadcast to rank r, inverse(p))."""
        t = node.outputs[0]
        hit = self._elementwise_use(t)
        if hit is None or not self._leads_to_transpose(hit[0].outputs[0]):
            return None
        op, const = hit
        x = node.inputs[0]
        inputs = [x if i == t else i for i in op.inputs]
        if const is not None:
            c = self.consts[const]
            c = c.reshape((1,) * (len(perm) - c.ndim) + c.shape)
            inv = tuple(int(i) for i in np.argsort(perm))
            new_c = self._fresh(nodes, f"{const}/relayout")
            self.consts[new_c] = np.ascontiguousarray(np.transpose(c, inv))
            inputs = [new_c if i == const else i for i in inputs]
        moved = self._fresh(nodes, f"{op.outputs[0]}/before_{node.name}")
        nodes.remove(node)
        k = nodes.index(op)
        nodes[k] = op.with_(inputs=tuple(inputs), outputs=(moved,))
        nodes.insert(k + 1, node.with_(inputs=(moved,), outputs=op.outputs))
        return self._graph(nodes)

    def _fold_into_matmul(self, nodes: list[Node], node: Node, perm: tuple[int, ...]) -> Graph | None:
        """MatMul(Reshape(Transpose(x, p), [N, K]), W) -> MatMul(Reshape(x, [N, K]), W') with W's rows permuted.

        tf2onnx flattens NCHW feature maps in TensorFlow's NHWC order before the first Dense layer;
        permuting the constant weight rows instead removes the Transpose (the flattened index k of
        the transposed tensor reads element sigma[k] of x flattened, so W'[sigma[k]] = W[k]).
        """
        t = node.outputs[0]
        users = self.consumers.get(t, [])
        if len(users) != 1 or t in self.outputs or users[0].op_type != "Reshape" or perm[0] != 0:
            return None
        reshape = users[0]
        r_out = reshape.outputs[0]
        x_shape = self.g.value_types.get(node.inputs[0])
        out_t = self.g.value_types.get(r_out)
        mm = self.consumers.get(r_out, [])
        if (
            x_shape is None
            or x_shape.shape is None
            or out_t is None
            or out_t.shape is None
            or len(out_t.shape) != 2
            or len(mm) != 1
            or r_out in self.outputs
            or mm[0].op_type != "MatMul"
            or mm[0].inputs[0] != r_out
            or mm[0].inputs[1] not in self.consts
        ):
            return None
        inner = x_shape.shape[1:]
        w = self.consts[mm[0].inputs[1]]
        if not all(isinstance(d, int) for d in inner) or w.ndim != 2:
            return None
        k = int(np.prod(inner))  # type: ignore[arg-type]
        if out_t.shape[1] != k or w.shape[0] != k or x_shape.shape[0] != out_t.shape[0]:
            return None
        dims = tuple(d for d in inner if isinstance(d, int))
        axes = tuple(p - 1 for p in perm[1:])
        sigma = np.transpose(np.arange(k).reshape(dims), axes).reshape(-1)
        w_new = np.empty_like(w)
        w_new[sigma] = w
        name = self._fresh(nodes, f"{mm[0].inputs[1]}/rows_permuted")
        self.consts[name] = w_new
        nodes.remove(node)
        nodes[nodes.index(reshape)] = reshape.with_(inputs=(node.inputs[0], *reshape.inputs[1:]))
        nodes[nodes.index(mm[0])] = mm[0].with_(inputs=(r_out, name))
        return self._graph(nodes)

    def _graph(self, nodes: list[Node]) -> Graph:
        g = self.g.replace(nodes=tuple(nodes), constants=self.consts, infer=False)
        return prune(g).replace()


def simplify(g: Graph, max_steps: int = 10_000) -> Graph:
    """Return ``g`` without no-op nodes and with inverse Transpose pairs cancelled."""
    for _ in range(max_steps):
        nxt = _Rewriter(g).step()
        if nxt is None:
            return g
        g = nxt
    return g
