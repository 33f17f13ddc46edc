"""Deployment of mmzsq-quantized detectors: BN folding, ONNX QDQ export,
onnxruntime inference (see tools/deployment/); single-stage detectors as
one graph (:mod:`.export`), two-stage ones as three (:mod:`.two_stage`)."""
from .fold import conv_bn_pairs, fold_student
from .qdq_layers import QDQConv2d, QDQLinear

__all__ = ['conv_bn_pairs', 'fold_student', 'QDQConv2d', 'QDQLinear']
