"""tools/benchmark/zsq_table.py and the run configs it generates: Stage II
seeds as variants with their range in the table, and the W4 warmup fitted
to runs shorter than it."""
import importlib.util
import os.path as osp

from mmengine.config import Config

from tests.conftest import ROOT


def _tool():
    spec = importlib.util.spec_from_file_location(
        '_zsq_table', osp.join(ROOT, 'tools', 'benchmark', 'zsq_table.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_seed_cells_give_mean_and_range():
    tool = _tool()
    assert tool.seed_variant(0) == (None, '')
    assert tool.seed_variant(2) == ('seed2', 'randomness = dict(seed=2)\n')
    fp = dict(mAP=0.4, mAP50=0.6)
    res = {'zsq:w8a8': dict(mAP=0.30, mAP50=0.50),
           'zsq:w8a8+seed1': dict(mAP=0.32, mAP50=0.52)}
    assert tool.cell(res, 'zsq:w8a8', [0], fp) == '0.300 / 0.500 (75.0 %)'
    assert tool.cell(res, 'zsq:w8a8', [0, 1, 2], fp) == \
        '0.310 / 0.510 (77.5 %), 0.300–0.320 over 2 seeds'
    assert tool.cell(res, 'zsq:w4a8', [0, 1], fp) == '—'


def _run(tmp_path, bits, iters, extra=''):
    from tools._common.experiment import PRESETS, run_cfg
    for d in ('configs', 'sets'):
        (tmp_path / d).mkdir(exist_ok=True)
    p = dict(PRESETS['toy'], qat_iters=iters)
    return Config.fromfile(run_cfg(p, str(tmp_path), 'zsq', bits, 'fp.pth',
                                   None, extra, f'zsq_{bits}_{iters}'))


def test_short_runs_get_a_third_of_the_run_as_warmup(tmp_path):
    base = Config.fromfile(osp.join(ROOT, 'configs/zsq/yolov5_n_w4a8.py'))
    assert base.param_scheduler[0].end == 100
    short = _run(tmp_path, 'w4a8', 150).param_scheduler
    assert [s.type for s in short] == ['LinearLR', 'CosineAnnealingLR']
    assert short[0].end == 50 and short[0].start_factor == 0.01
    assert short[1].eta_min == base.param_scheduler[1].eta_min
    # long enough, or no warmup at all: the shipped schedule
    assert _run(tmp_path, 'w4a8', 300).param_scheduler == \
        base.param_scheduler
    w8 = _run(tmp_path, 'w8a8', 30).param_scheduler
    assert [s.type for s in w8] == ['CosineAnnealingLR']
    # a variant's own schedule still wins
    lines = "param_scheduler = [dict(type='ConstantLR', by_epoch=False)]\n"
    assert _run(tmp_path, 'w4a8', 30, lines).param_scheduler[0].type == \
        'ConstantLR'


def test_cpu_medium_runs_its_networks_compiled(tmp_path):
    """cpu-medium's Stage I compiles the teacher
    (train_cfg.synthesis.compile); its Stage II and the short presets,
    whose runs would pay about as much compile as they save, do not."""
    from tools._common.experiment import PRESETS, run_cfg, set_cfg
    for d in ('configs', 'sets'):
        (tmp_path / d).mkdir(exist_ok=True)
    for preset, want in (('cpu-medium', True), ('toy', False),
                         ('demo', False)):
        p = PRESETS[preset]
        stage1 = Config.fromfile(set_cfg(p, str(tmp_path), 'als', 'fp.pth'))
        stage2 = Config.fromfile(run_cfg(p, str(tmp_path), 'zsq', 'w4a8',
                                         'fp.pth', None, '', preset))
        assert stage1.train_cfg.synthesis.get('compile', False) is want
        assert stage2.model.get('compile', False) is False
        assert stage2.train_cfg.synthesis.get('compile', False) is want
