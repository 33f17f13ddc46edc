from .yolo_predictions import YOLOPredictions, decode_yolo_outputs, yolo_kind

__all__ = ['YOLOPredictions', 'decode_yolo_outputs', 'yolo_kind']
