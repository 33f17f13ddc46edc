from .compiled_parts import CompiledParts
from .yolo_predictions import (YOLOPredictions, decode_yolo_outputs,
                               max_confidence, yolo_kind)

__all__ = ['CompiledParts', 'YOLOPredictions', 'decode_yolo_outputs',
           'max_confidence', 'yolo_kind']
