# YOLO11-m W4A8 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolo11_m.py'
model = dict(quantizer=dict(w_bits=4, a_bits=8))
