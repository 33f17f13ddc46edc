# YOLOv5-m W5A5 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolov5_m.py'
model = dict(quantizer=dict(w_bits=5, a_bits=5))
