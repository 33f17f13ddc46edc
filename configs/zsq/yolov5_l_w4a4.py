# YOLOv5-l W4A4 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolov5_l.py'
model = dict(quantizer=dict(w_bits=4, a_bits=4))
