"""Quantize the activations *between* quantized convs, so onnxruntime runs
the whole network in int8.

After :func:`mmzsq.deployment.export.export_onnx` with output quantization
each quantized conv is ``DQ -> Conv -> Q`` (an int8 ``QLinearConv`` in
onnxruntime), but what lies between two convs (YOLO: SiLU = Sigmoid * x,
residual Add, Concat, SPPF MaxPool, nearest Resize) still runs in float
between a ``DequantizeLinear`` and a ``QuantizeLinear``: about a third of
the int8 latency on a 2-core CPU.  This pass gives those tensors int8
``Q -> DQ`` pairs too, so onnxruntime's QDQ rules turn the ops into
``QLinearSigmoid`` / ``QLinearMul`` / ``QLinearAdd`` / ``QLinearConcat`` and
int8 ``MaxPool`` / ``Resize``.

Which grid each new tensor gets, in order of preference:

1. a ``MaxPool`` / nearest ``Resize`` output: its input's grid, and a
   ``Concat`` input consumed only by such order-preserving ops: the Concat
   output's grid (``Q(max(x)) == max(Q(x))``, ``Q(cat(a, b)) ==
   cat(Q(a), Q(b))``: exact, no re-quantization);
2. the student's own learned step size when the tensor (or one tied to it
   by 1.) feeds a quantized conv: the student's ``QuantizeLinear`` is
   reused, so that conv sees exactly the student's codes (several
   different consumers: the coarsest step, which clips nothing, and the
   others re-quantize from it);
3. a Sigmoid output: the fixed grid ``[0, 1]`` in 255 steps;
4. otherwise the observed min/max over calibration batches (uint8,
   asymmetric), measured by running the graph in onnxruntime.

So a tensor the student quantizes keeps its codes, and only tensors the
student keeps in float (a residual sum, a sigmoid, a Concat nobody
quantizes directly) gain an 8-bit grid it did not train with: a deploy-time
approximation, measured by ``tools/deployment/ort_eval.py`` (mAP of the
ONNX model vs the PyTorch fake-quant student).  Tensors none of whose
consumers is int8 (e.g. inputs of the float prediction convs) stay float.
All grids are uint8, like every activation of the export (onnxruntime's
x86 QLinear* kernels need one type, u8, on all activations of an op).
"""
import collections
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .onnx_qdq import _constants
from .qdq_layers import asymmetric_uint8

ORDER_PRESERVING = ('MaxPool', 'Resize')  # Q(op(x)) == op(Q(x))
ELEMENTWISE = ('Sigmoid', 'Mul', 'Add')
SIGMOID_GRID = (1.0 / 255.0, 0)  # [0, 1] on uint8 codes 0..255

Grid = Tuple[float, int]  # (scale, uint8 zero-point)


def _data_inputs(n) -> List[str]:
    if n.op_type in ('Mul', 'Add', 'Concat'):
        return list(n.input)
    return [n.input[0]]


def _attr(n, name, default=None):
    for a in n.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _candidate(n) -> bool:
    if n.op_type == 'Resize':
        mode = _attr(n, 'mode', b'nearest')
        return mode in (b'nearest', 'nearest')
    if n.op_type == 'MaxPool':
        return len(n.output) == 1 or not n.output[1]
    return n.op_type in ELEMENTWISE + ('Concat', )


class _Graph:

    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.const = _constants(g)
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: Dict[str, list] = collections.defaultdict(list)
        for n in g.node:
            for i in n.input:
                self.consumers[i].append(n)

    def grid_of(self, q) -> Optional[Grid]:
        """(scale, zp) of a uint8 per-tensor Q/DQ node, else None."""
        if len(q.input) < 3 or q.input[1] not in self.const or \
                q.input[2] not in self.const:
            return None
        s, zp = self.const[q.input[1]], self.const[q.input[2]]
        if s.size != 1 or zp.dtype != np.uint8:
            return None
        return float(s.reshape(())), int(zp.reshape(()))

    def is_activation_dq(self, t: str) -> bool:
        p = self.producer.get(t)
        return p is not None and p.op_type == 'DequantizeLinear' and \
            p.input[0] not in self.const and self.grid_of(p) is not None

    def student_qs(self, t: str) -> list:
        return [c for c in self.consumers[t] if c.op_type == 'QuantizeLinear'
                and c.input[0] == t and self.grid_of(c) is not None]


def _int8_ops(gr: _Graph, nodes) -> list:
    """Nodes that can run in int8: data inputs all quantized (activation
    DQ or another int8 op) and some consumer int8 too (a Q or int8 op)."""
    cand = [n for n in nodes if _candidate(n)]
    chosen = set(id(n) for n in cand)
    while True:
        out_of = {o: n for n in cand if id(n) in chosen for o in n.output}
        keep = set()
        for n in cand:
            if id(n) not in chosen:
                continue
            ins = _data_inputs(n)
            ok = all(gr.is_activation_dq(i) or i in out_of for i in ins)
            users = gr.consumers[n.output[0]]
            ok = ok and any(u.op_type == 'QuantizeLinear' or id(u) in chosen
                            for u in users)
            if ok:
                keep.add(id(n))
        if keep == chosen:
            return [n for n in cand if id(n) in chosen]
        chosen = keep


class _Classes:
    """Union-find over tensor names (tensors sharing one grid)."""

    def __init__(self):
        self.parent: Dict[str, str] = {}

    def find(self, t):
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)

    def groups(self) -> Dict[str, List[str]]:
        res = collections.defaultdict(list)
        for t in list(self.parent):
            res[self.find(t)].append(t)
        return res


def quantize_activations(
        model: onnx.ModelProto,
        calibrate: Optional[Callable[[List[str]], Dict[str, Tuple[float,
                                                                  float]]]]
        = None) -> Dict[str, int]:
    """Rewrite ``model`` in place (see module docstring).

    ``calibrate(names) -> {name: (min, max)}`` observes float tensors (see
    :func:`ort_min_max`); without it, tensors that need a calibrated grid
    stay float.  Returns counts of what was done.
    """
    g = model.graph
    gr = _Graph(model)
    ops = _int8_ops(gr, g.node)
    outs = [n.output[0] for n in ops]
    out_set = set(outs)
    op_ids = {id(n) for n in ops}
    cls = _Classes()
    fixed: Dict[str, Grid] = {}
    for n in ops:
        cls.find(n.output[0])
        if n.op_type in ORDER_PRESERVING:
            x = n.input[0]
            if x in out_set:
                cls.union(x, n.output[0])
            else:  # straight from a DQ: keep its grid
                fixed[n.output[0]] = gr.grid_of(gr.producer[x])
        elif n.op_type == 'Concat':
            for x in n.input:
                if x in out_set and _sole_concat(gr, x, op_ids) is n:
                    cls.union(x, n.output[0])
        elif n.op_type == 'Sigmoid':
            fixed[n.output[0]] = SIGMOID_GRID
    groups = cls.groups()

    grid: Dict[str, Grid] = {}  # class root -> grid
    need_calib = []
    for root, members in groups.items():
        fx = [fixed[t] for t in members if t in fixed]
        qs = [gr.grid_of(q) for t in members for q in gr.student_qs(t)]
        if fx:
            grid[root] = fx[0]
        elif qs:  # most consumers reuse theirs; ties: coarsest (no clip)
            count = collections.Counter(qs)
            grid[root] = max(qs, key=lambda q: (count[q], q))
        else:
            need_calib.append(root)
    calibrated = 0
    if need_calib and calibrate is not None:
        names = sorted({t for r in need_calib for t in groups[r]})
        ranges = calibrate(names)
        for r in need_calib:
            lo = min(ranges[t][0] for t in groups[r])
            hi = max(ranges[t][1] for t in groups[r])
            grid[r] = asymmetric_uint8(lo, hi)
            calibrated += 1

    # rewrite: t -> Q(grid) -> DQ -> consumers; a student Q on the same grid
    # is replaced by the new Q
    new_nodes, new_inits, drop = [], [], set()
    stats = dict(int8_ops=0, reused_student_grid=0, calibrated=calibrated,
                 requantized=0)
    for root, members in groups.items():
        if root not in grid:
            continue
        s, zp = grid[root]
        sn, zn = root + '_i8_scale', root + '_i8_zp'
        new_inits += [numpy_helper.from_array(np.array(s, np.float32), sn),
                      numpy_helper.from_array(np.array(zp, np.uint8), zn)]
        for t in members:
            q_out, dq_out = t + '_i8_q', t + '_i8'
            new_nodes.append(helper.make_node(
                'QuantizeLinear', [t, sn, zn], [q_out], name=t + '_i8_Q'))
            need_dq = False
            for c in gr.consumers[t]:
                sg = gr.grid_of(c) if c.op_type == 'QuantizeLinear' else None
                if sg is not None and np.float32(sg[0]) == np.float32(s) \
                        and sg[1] == zp:
                    for u in gr.consumers[c.output[0]]:
                        for j, i in enumerate(u.input):
                            if i == c.output[0]:
                                u.input[j] = q_out
                    for o in g.output:
                        if o.name == c.output[0]:
                            raise ValueError('graph output is a Q node')
                    drop.add(id(c))
                    stats['reused_student_grid'] += 1
                    continue
                if sg is not None:
                    stats['requantized'] += 1
                need_dq = True
                for j, i in enumerate(c.input):
                    if i == t:
                        c.input[j] = dq_out
            if need_dq:
                new_nodes.append(helper.make_node(
                    'DequantizeLinear', [q_out, sn, zn], [dq_out],
                    name=t + '_i8_DQ'))
    stats['int8_ops'] = sum(1 for n in ops if _grid_known(n, cls, grid))
    kept = [n for n in g.node if id(n) not in drop]
    g.initializer.extend(new_inits)
    del g.node[:]
    g.node.extend(_toposort(kept + new_nodes, g))
    return stats


def _sole_concat(gr: _Graph, t: str, op_ids):
    """The one int8 Concat that ``t`` reaches, directly or through
    order-preserving int8 ops only; None if any other consumer or several
    Concats (then ``t`` cannot share the Concat's grid for free)."""
    found = set()
    stack = [t]
    while stack:
        for u in gr.consumers[stack.pop()]:
            if id(u) not in op_ids:
                return None
            if u.op_type == 'Concat':
                found.add(id(u))
                last = u
            elif u.op_type in ORDER_PRESERVING:
                stack.append(u.output[0])
            else:
                return None
    return last if len(found) == 1 else None


def _grid_known(n, cls, grid) -> bool:
    return cls.find(n.output[0]) in grid


def _toposort(nodes, graph) -> list:
    avail = {i.name for i in graph.input} | \
        {i.name for i in graph.initializer} | {''}
    avail |= {o for n in nodes if n.op_type == 'Constant' for o in n.output}
    order, rest = [], list(nodes)
    while rest:
        left = []
        for n in rest:
            if all(i in avail for i in n.input):
                order.append(n)
                avail.update(n.output)
            else:
                left.append(n)
        if len(left) == len(rest):
            raise ValueError(f'cycle or dangling input at {left[0].name}')
        rest = left
    return order


def ort_min_max(model: onnx.ModelProto, inputs: Iterable[np.ndarray]
                ) -> Callable[[List[str]], Dict[str, Tuple[float, float]]]:
    """A ``calibrate`` for :func:`quantize_activations`: runs ``model``
    (as it is before the rewrite) in onnxruntime with the named tensors as
    extra outputs over ``inputs`` (preprocessed batches) and returns their
    min/max."""
    inputs = list(inputs)

    def calibrate(names):
        import onnxruntime as ort
        m = onnx.ModelProto()
        m.CopyFrom(model)
        have = {o.name for o in m.graph.output}
        for t in names:
            if t not in have:
                m.graph.output.append(helper.make_tensor_value_info(
                    t, onnx.TensorProto.FLOAT, None))
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = \
            ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(m.SerializeToString(), so,
                                    providers=['CPUExecutionProvider'])
        in_name = sess.get_inputs()[0].name
        res: Dict[str, Tuple[float, float]] = {}
        if not inputs:
            raise ValueError('ort_min_max: no calibration batches')
        for x in inputs:
            vals = sess.run(names, {in_name: np.ascontiguousarray(
                x, dtype=np.float32)})
            for t, v in zip(names, vals):
                lo, hi = float(v.min()), float(v.max())
                o = res.get(t, (lo, hi))
                res[t] = (min(lo, o[0]), max(hi, o[1]))
        return res

    return calibrate
