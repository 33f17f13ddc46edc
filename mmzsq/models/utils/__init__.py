from .yolo_predictions import (YOLOPredictions, decode_yolo_outputs,
                               max_confidence, yolo_kind)

__all__ = ['YOLOPredictions', 'decode_yolo_outputs', 'max_confidence',
           'yolo_kind']
