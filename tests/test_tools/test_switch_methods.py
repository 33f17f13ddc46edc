"""The [Beyond] harness methods (tools/_common/experiment.py): zsq-lowpass,
zsq-softlabel, zsq-iou and zsq-pctinit are the `zsq` run plus their
switch, selectable by tools/benchmark/zsq_table.py --methods."""
import subprocess
import sys

import pytest
from mmengine.config import Config

from tests.conftest import ROOT

SWITCHES = ('zsq-lowpass', 'zsq-softlabel', 'zsq-iou', 'zsq-pctinit')


def _cfgs(tmp_path, methods=('zsq', ) + SWITCHES, bits='w4a8'):
    from tools._common.experiment import PRESETS, run_cfg
    for d in ('configs', 'sets'):
        (tmp_path / d).mkdir(exist_ok=True)
    return {m: Config.fromfile(run_cfg(PRESETS['toy'], str(tmp_path), m,
                                       bits, 'fp.pth', None, '', m))
            for m in methods}


def test_each_switch_is_the_zsq_run_plus_its_keys(tmp_path):
    from tools._common.experiment import METHOD_NAMES, METHODS, set_of
    assert set(SWITCHES) <= set(METHODS) and set(SWITCHES) <= set(
        METHOD_NAMES)
    # at W6A6: at W4A8 the shipped YOLOv5 configs have the IoU term on
    got = _cfgs(tmp_path, bits='w6a6')
    zsq = got['zsq']
    assert zsq.model.get('soft_label') is None
    assert zsq.model.loss_weights.to_dict() == dict(det=0.04, kd=0.1,
                                                    feat=1.0)
    assert zsq.train_cfg.synthesis.get('low_pass_filter') is None
    changed = {  # what each switch may change
        'zsq-lowpass': ('train_dataloader', 'train_cfg'),
        'zsq-softlabel': ('model', ),
        'zsq-iou': ('model', ), 'zsq-pctinit': ('model', )}
    for m, keys in changed.items():
        cfg = got[m]
        for k in set(zsq) | set(cfg):
            if k not in keys:
                assert cfg.get(k) == zsq.get(k), (m, k)
        assert cfg.model.init_checkpoint == 'fp.pth'  # updated, not lost
    lp = got['zsq-lowpass']
    assert set_of('zsq-lowpass') == 'als-lowpass'
    assert lp.train_dataloader.dataset.data_root.endswith(
        '/sets/als-lowpass/')
    syn = lp.train_cfg.synthesis
    assert syn.low_pass_filter.to_dict() == dict(d0=0.5, interval=50,
                                                 start=0.0, stop=1.0)
    assert syn.stages == zsq.train_cfg.synthesis.stages  # ALS, two stages
    assert {k: v for k, v in syn.items() if k != 'low_pass_filter'} == \
        zsq.train_cfg.synthesis
    assert got['zsq-softlabel'].model.soft_label.to_dict() == dict(
        conf_thr=0.25)
    iou = got['zsq-iou'].model
    assert iou.loss_weights.to_dict() == dict(det=0.04, kd=0.1, feat=1.0,
                                              iou=1.0)
    assert iou.iou_loss.type == 'mmzsq.DecodedBoxIoULoss'
    pct, base_q = got['zsq-pctinit'].model.quantizer, zsq.model.quantizer
    assert (pct.a_init, pct.a_percentile) == ('percentile', 0.9999)
    assert base_q.get('a_init') is None
    assert {k: v for k, v in pct.items()
            if k not in ('a_init', 'a_percentile')} == base_q  # merged
    for m in ('zsq-softlabel', 'zsq-iou', 'zsq-pctinit'):
        assert set_of(m) == 'als'
        assert got[m].train_dataloader == zsq.train_dataloader
        assert got[m].train_cfg == zsq.train_cfg


def test_w4a8_zsq_run_has_the_iou_term(tmp_path):
    """The W4A8 `zsq` row is the shipped default, the IoU term included;
    `zsq-iou` adds nothing there."""
    got = _cfgs(tmp_path, ('zsq', 'zsq-iou'))
    for m in ('zsq', 'zsq-iou'):
        model = got[m].model
        assert model.loss_weights.to_dict() == dict(det=0.04, kd=0.1,
                                                    feat=1.0, iou=1.0)
        assert model.iou_loss.to_dict() == dict(
            type='mmzsq.DecodedBoxIoULoss', conf_thr=0.25)


def test_the_generated_switches_build(tmp_path):
    """The lines are keys the library takes: the algorithm builds with
    them, the low-pass set's Stage I settings pass their checks."""
    from mmengine.registry import init_default_scope

    from mmzsq.engine.runner.low_pass_filter import LowPassFilter
    from mmzsq.registry import MODELS
    from mmzsq.synthesis import check_synthesis
    from tools._common.experiment import PRESETS, set_cfg
    got = _cfgs(tmp_path, SWITCHES)
    init_default_scope('mmyolo')
    assert MODELS.build(got['zsq-softlabel'].model).soft_label.conf_thr \
        == 0.25
    assert MODELS.build(got['zsq-iou'].model).iou_loss.conf_thr == 0.25
    q = MODELS.build(got['zsq-pctinit'].model.quantizer)
    assert (q.a_init, q.a_percentile, q.w_bits) == ('percentile', 0.9999, 4)
    syn = check_synthesis(got['zsq-lowpass'].train_cfg.synthesis)
    assert LowPassFilter.build(syn['low_pass_filter']).interval == 50
    # its Stage I config writes its own set, with the same settings
    sc = Config.fromfile(set_cfg(PRESETS['toy'], str(tmp_path),
                                 'als-lowpass', 'fp.pth'))
    assert sc.train_dataloader.dataset.data_root == \
        got['zsq-lowpass'].train_dataloader.dataset.data_root
    assert sc.train_cfg.synthesis == got['zsq-lowpass'].train_cfg.synthesis


@pytest.mark.parametrize('methods,ok', [(list(SWITCHES), True),
                                        (['zsq-nope'], False)])
def test_zsq_table_accepts_them(methods, ok):
    # (an unknown preset stops argparse after --methods was read)
    r = subprocess.run(
        [sys.executable, 'tools/benchmark/zsq_table.py', '--methods',
         *methods, '--preset', 'nope'], cwd=ROOT, capture_output=True,
        text=True, timeout=120)
    assert r.returncode == 2
    assert ("argument --preset: invalid choice: 'nope'" in r.stderr) == ok
    assert ("argument --methods: invalid choice" in r.stderr) == (not ok)
