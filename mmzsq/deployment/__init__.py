"""Deployment of mmzsq-quantized detectors: BN folding, ONNX QDQ export,
onnxruntime inference (see tools/deployment/)."""
from .fold import conv_bn_pairs, fold_student
from .qdq_layers import QDQConv2d, QDQLinear

__all__ = ['conv_bn_pairs', 'fold_student', 'QDQConv2d', 'QDQLinear']
