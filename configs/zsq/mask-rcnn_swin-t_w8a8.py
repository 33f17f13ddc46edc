# mask-rcnn_swin-t W8A8 zero-shot QAT on the synthetic set.
_base_ = './_base_/mask-rcnn_swin-t_zsq.py'
model = dict(quantizer=dict(w_bits=8, a_bits=8))
