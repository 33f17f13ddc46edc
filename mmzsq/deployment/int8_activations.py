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


def _shared_grids(gr: _Graph, ops: list) -> Tuple[_Classes, Dict[str, Grid]]:
    """The int8 ops' output tensors grouped into classes sharing one grid
    (rule 1 of the module docstring), and the grids fixed by rules 1 and 3
    (a MaxPool / Resize straight from a DQ, a Sigmoid)."""
    out_set = {n.output[0] for n in ops}
    op_ids = {id(n) for n in ops}
    cls, fixed = _Classes(), {}
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
    return cls, fixed


def _choose_grids(gr: _Graph, groups: Dict[str, List[str]],
                  fixed: Dict[str, Grid], calibrate) -> Tuple[Dict, int]:
    """(class root -> grid, how many were calibrated): a fixed grid, else
    the student's (rule 2), else calibrated min/max (rule 4, only with
    ``calibrate``)."""
    grid: Dict[str, Grid] = {}
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
    if not need_calib or calibrate is None:
        return grid, 0
    ranges = calibrate(sorted({t for r in need_calib for t in groups[r]}))
    for r in need_calib:
        grid[r] = asymmetric_uint8(min(ranges[t][0] for t in groups[r]),
                                   max(ranges[t][1] for t in groups[r]))
    return grid, len(need_calib)


def _same_grid(sg: Optional[Grid], s: float, zp: int) -> bool:
    return sg is not None and np.float32(sg[0]) == np.float32(s) and \
        sg[1] == zp


def _rename_input(node, old: str, new: str):
    for j, i in enumerate(node.input):
        if i == old:
            node.input[j] = new


def _insert_qdq(g, gr: _Graph, t: str, sn: str, zn: str, s: float,
                zp: int, drop: set, stats: Dict[str, int]) -> list:
    """``t -> Q -> DQ -> consumers`` on the grid (``sn``, ``zn``); a
    student Q on the same grid is bypassed (its consumers read the new Q)
    and dropped.  Returns the new nodes."""
    q_out, dq_out = t + '_i8_q', t + '_i8'
    nodes = [helper.make_node('QuantizeLinear', [t, sn, zn], [q_out],
                              name=t + '_i8_Q')]
    need_dq = False
    for c in gr.consumers[t]:
        sg = gr.grid_of(c) if c.op_type == 'QuantizeLinear' else None
        if _same_grid(sg, s, zp):
            if any(o.name == c.output[0] for o in g.output):
                raise ValueError('graph output is a Q node')
            for u in gr.consumers[c.output[0]]:
                _rename_input(u, c.output[0], q_out)
            drop.add(id(c))
            stats['reused_student_grid'] += 1
            continue
        if sg is not None:
            stats['requantized'] += 1
        need_dq = True
        _rename_input(c, t, dq_out)
    if need_dq:
        nodes.append(helper.make_node('DequantizeLinear', [q_out, sn, zn],
                                      [dq_out], name=t + '_i8_DQ'))
    return nodes


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
    cls, fixed = _shared_grids(gr, ops)
    groups = cls.groups()
    grid, calibrated = _choose_grids(gr, groups, fixed, calibrate)
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
            new_nodes += _insert_qdq(g, gr, t, sn, zn, s, zp, drop, stats)
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


class _Batches:
    """An onnxruntime ``CalibrationDataReader`` over preprocessed batches."""

    def __init__(self, input_name: str, inputs: List[np.ndarray]):
        self._feeds = iter([{input_name: np.ascontiguousarray(
            x, dtype=np.float32)} for x in inputs])

    def get_next(self) -> Optional[dict]:
        return next(self._feeds, None)


def ort_min_max(model: onnx.ModelProto, inputs: Iterable[np.ndarray]
                ) -> Callable[[List[str]], Dict[str, Tuple[float, float]]]:
    """A ``calibrate`` for :func:`quantize_activations`: onnxruntime's
    MinMax calibrator (``onnxruntime.quantization.create_calibrator``) run
    on ``model`` (as it is before the rewrite) over ``inputs``
    (preprocessed batches); the named tensors' global [min, max]."""
    inputs = list(inputs)

    def calibrate(names):
        import os.path as osp
        import tempfile

        from onnxruntime.quantization import CalibrationMethod
        from onnxruntime.quantization.calibrate import create_calibrator
        if not inputs:
            raise ValueError('ort_min_max: no calibration batches')
        producer = {o: n.op_type for n in model.graph.node for o in n.output}
        in_name = model.graph.input[0].name
        with tempfile.TemporaryDirectory() as d:
            onnx.save(model, osp.join(d, 'model.onnx'))
            calibrator = create_calibrator(
                osp.join(d, 'model.onnx'), sorted({producer[t]
                                                   for t in names}),
                osp.join(d, 'augmented.onnx'), CalibrationMethod.MinMax)
            calibrator.collect_data(_Batches(in_name, inputs))
            ranges = calibrator.compute_data()
        res = {}
        for t in names:
            lo, hi = ranges[t].range_value
            res[t] = (float(np.min(lo)), float(np.max(hi)))
        return res

    return calibrate
