"""BNReestimateHook: the quantized student's BN statistics re-estimated on
the Stage I set before QAT (bn_mode='reestimate'), a no-op otherwise."""
import pytest
import torch

from tests.test_engine.test_zsq_train_loop import build, zsq_cfg


@pytest.mark.parametrize('bn_mode', ['reestimate', 'frozen'])
def test_student_bn_reestimated_only_when_asked(tmp_path, bn_mode):
    cfg = zsq_cfg(tmp_path / 'w', str(tmp_path / 'set'), num_images=4)
    cfg.model.bn_mode = bn_mode
    # the shipped configs' sampler, and QAT iterations after the pass: the
    # pass must not end the loop's data (it did once: a second iterator
    # closed InfiniteSampler's shared index generator)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_cfg.max_iters = 3
    cfg.custom_hooks = [dict(type='mmzsq.BNReestimateHook', num_batches=2)]
    runner = build(cfg)
    runner.train()
    algo = runner.model
    s = algo.architecture.backbone.stem.bn
    t = algo.teacher.backbone.stem.bn
    same = torch.equal(s.running_mean, t.running_mean) and \
        torch.equal(s.running_var, t.running_var)
    # frozen: the student keeps the teacher's statistics (same init)
    assert same == (bn_mode == 'frozen')
    assert not s.training  # frozen during QAT in both modes
    log = open(f'{runner.log_dir}/{runner.timestamp}.log').read()
    reestimated = 're-estimated over 2 batches' in log
    assert reestimated == (bn_mode == 'reestimate')
    assert runner.iter == 3
