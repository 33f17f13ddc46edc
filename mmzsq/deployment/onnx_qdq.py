"""Post-process a torch-exported QDQ graph into the form onnxruntime fuses.

torch exports ``fake_quantize`` on a weight as ``QuantizeLinear`` ->
``DequantizeLinear`` on a float initializer, and leaves the bias float.
Here (pure ``onnx``, no torch):

* weights: ``Q(W_float)`` is evaluated once into an **int8 initializer**
  feeding the ``DequantizeLinear`` (the codes are exact: ``W_float`` is
  codes x step by construction, see :mod:`mmzsq.deployment.fold`);
* biases of convs / Gemms whose input and weight are both dequantized become
  **int32** ``DequantizeLinear(b_q, s_x*s_w, 0)`` (``b_q = round(b/(s_x
  s_w))``; error <= s_x*s_w/2, far below one output code), as
  onnxruntime's QDQ -> ``QLinearConv`` selector requires.
"""
from typing import Dict

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _constants(graph) -> Dict[str, np.ndarray]:
    c = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == 'Constant' and n.attribute[0].name == 'value':
            c[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return c


def _axis(node, default=1):
    for a in node.attribute:
        if a.name == 'axis':
            return a.i
    return default


def _bcast(v, axis, ndim):
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def _weight_codes(q, const, consumers, new_inits) -> bool:
    """``Q(constant float)`` -> its codes as an int8 initializer read by
    the ``DequantizeLinear`` s (True: done, drop ``q``)."""
    x = q.input[0]
    if x not in const or q.input[1] not in const:
        return False
    w, s = const[x].astype(np.float32), const[q.input[1]]
    zp = const[q.input[2]] if len(q.input) > 2 else np.zeros((), np.int8)
    axis = _axis(q) % w.ndim
    s_b, zp_b = _bcast(s, axis, w.ndim), _bcast(zp, axis, w.ndim)
    info = np.iinfo(zp.dtype)
    codes = np.clip(np.rint(w / s_b) + zp_b.astype(np.int64), info.min,
                    info.max).astype(zp.dtype)
    name = x + '_quantized'
    new_inits.append(numpy_helper.from_array(codes, name))
    for dq in consumers.get(q.output[0], []):
        dq.input[0] = name
    return True


def _dequantized_inputs(n, const, producer) -> bool:
    """A Conv / Gemm (transB) with a constant bias whose input and weight
    both come from a ``DequantizeLinear``."""
    if n.op_type not in ('Conv', 'Gemm') or len(n.input) < 3 or \
            n.input[2] not in const:
        return False
    dqx, dqw = producer.get(n.input[0]), producer.get(n.input[1])
    if not (dqx is not None and dqw is not None and
            dqx.op_type == dqw.op_type == 'DequantizeLinear'):
        return False
    return n.op_type != 'Gemm' or not any(
        a.name == 'transB' and a.i == 0 for a in n.attribute)


def _int32_bias(n, const, producer, new_inits, new_nodes):
    """``n``'s float bias -> ``DequantizeLinear(b_q, s_x*s_w, 0)``."""
    dqx, dqw = producer[n.input[0]], producer[n.input[1]]
    s_x = const[dqx.input[1]].astype(np.float64).reshape(())
    s_w = const[dqw.input[1]].astype(np.float64).reshape(-1)
    b = const[n.input[2]].astype(np.float64)
    s_b = (s_x * s_w) * np.ones_like(b)
    codes = np.clip(np.rint(b / s_b), -2**31, 2**31 - 1).astype(np.int32)
    base = n.input[2]
    new_inits += [
        numpy_helper.from_array(codes, base + '_int32'),
        numpy_helper.from_array(s_b.astype(np.float32),
                                base + '_int32_scale'),
        numpy_helper.from_array(np.zeros_like(codes), base + '_int32_zp')]
    out = base + '_dequantized'
    new_nodes.append(helper.make_node(
        'DequantizeLinear', [base + '_int32', base + '_int32_scale',
                             base + '_int32_zp'], [out], axis=0,
        name=base + '_DequantizeLinear'))
    n.input[2] = out


def _drop_unused_initializers(g):
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)


def finalize_qdq(model: onnx.ModelProto) -> Dict[str, int]:
    """Rewrite ``model`` in place; returns counts of what was rewritten."""
    g = model.graph
    const = _constants(g)
    producer = {o: n for n in g.node for o in n.output}
    consumers: Dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    new_inits, new_nodes = [], []
    # 1. Q(constant float) -> int8 initializer
    drop = {id(q) for q in g.node if q.op_type == 'QuantizeLinear' and
            _weight_codes(q, const, consumers, new_inits)}
    # 2. float bias of DQ-input, DQ-weight Conv / Gemm -> int32 DQ
    biased = [n for n in g.node if _dequantized_inputs(n, const, producer)]
    for n in biased:
        _int32_bias(n, const, producer, new_inits, new_nodes)
    kept = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(new_nodes + kept)
    g.initializer.extend(new_inits)
    _drop_unused_initializers(g)
    return dict(int8_weights=len(drop), int32_biases=len(biased))
