# YOLOv5-n W6A6 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolov5_n.py'
model = dict(quantizer=dict(w_bits=6, a_bits=6))
