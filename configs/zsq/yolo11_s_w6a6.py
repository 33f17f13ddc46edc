# YOLO11-s W6A6 zero-shot QAT on the synthetic set.
_base_ = './_base_/yolo11_s.py'
model = dict(quantizer=dict(w_bits=6, a_bits=6))
