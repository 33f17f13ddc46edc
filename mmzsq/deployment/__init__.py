"""Deployment of mmzsq-quantized detectors: BN folding, ONNX QDQ export,
onnxruntime inference (see tools/deployment/); single-stage detectors as
one graph (:mod:`.export`), two-stage ones as three (:mod:`.two_stage`);
an export as an MMEngine model for ``Runner.test`` (:mod:`.ort_detector`)."""
from .fold import conv_bn_pairs, fold_student
from .ort_detector import ONNXRuntimeDetector
from .qdq_layers import QDQConv2d, QDQLinear

__all__ = ['conv_bn_pairs', 'fold_student', 'ONNXRuntimeDetector',
           'QDQConv2d', 'QDQLinear']
