# YOLO11-m W8A8 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolo11_m.py'
model = dict(quantizer=dict(w_bits=8, a_bits=8))
