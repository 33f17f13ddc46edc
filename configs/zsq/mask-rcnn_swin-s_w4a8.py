# mask-rcnn_swin-s W4A8 zero-shot QAT on the synthetic set.
_base_ = './_base_/mask-rcnn_swin-s_zsq.py'
model = dict(quantizer=dict(w_bits=4, a_bits=8))
