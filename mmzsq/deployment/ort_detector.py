"""An exported detector as an MMEngine model: ``Runner.test`` (the config's
test dataloader, its CocoMetric) evaluates onnxruntime like any detector.
"""
import os
from typing import Dict, Optional, Union

import torch.nn as nn
from mmengine.model import BaseModel

from mmzsq.registry import MODELS
from mmzsq.utils.errors import UserError


@MODELS.register_module()
class ONNXRuntimeDetector(BaseModel):
    """``predict`` of an ONNX export (single graph, or the three graphs of a
    two-stage export) in onnxruntime, with the config's detector around it.

    Args:
        detector: the float detector of the config the model was exported
            from (dict or module): its ``data_preprocessor`` prepares the
            batches and its heads decode (``predict_by_feat``, RoI stage);
            its weights are not used.
        onnx_file: the export (two-stage: the first graph, ``--out``).
        threads: onnxruntime intra-op threads.
        work_dir: where the onnxruntime-optimised graphs are saved (their
            int8 kernels are counted by :meth:`kernels`).
    """

    def __init__(self, detector: Union[Dict, nn.Module], onnx_file: str,
                 threads: int = 1, work_dir: Optional[str] = None):
        from .ort_runner import SingleStageRunner
        from .two_stage import TwoStageRunner, is_two_stage, two_stage_info
        if isinstance(detector, dict):
            detector = MODELS.build(detector)
        super().__init__(data_preprocessor=detector.data_preprocessor)
        if not os.path.isfile(onnx_file):
            raise UserError(f'ONNX model not found: {onnx_file}; export it '
                            'with tools/deployment/export_onnx.py')
        if work_dir:
            os.makedirs(work_dir, exist_ok=True)
        detector.eval()
        if two_stage_info(onnx_file) is not None:
            runner = TwoStageRunner(detector, onnx_file, threads, work_dir)
        elif is_two_stage(detector):
            raise UserError(f'{onnx_file} is a single-stage export but the '
                            'config builds a two-stage detector; pass the '
                            'config the model was exported from')
        else:
            runner = SingleStageRunner(detector, onnx_file, threads,
                                       work_dir)
        self.detector, self.runner = detector, runner
        self.two_stage = isinstance(runner, TwoStageRunner)

    @property
    def sessions(self) -> Dict:
        """onnxruntime sessions by graph role (``features`` first)."""
        return self.runner.sessions

    def kernels(self):
        return self.runner.kernels()

    def forward(self, inputs, data_samples=None, mode: str = 'predict'):
        if mode != 'predict':
            raise UserError(f'{type(self).__name__} only predicts (mode '
                            f'{mode!r}); train the PyTorch student instead')
        return self.runner.predict(inputs, data_samples)
