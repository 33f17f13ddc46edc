"""Re-estimate the quantized student's BN statistics before QAT."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmzsq.registry import HOOKS


@HOOKS.register_module()
class BNReestimateHook(Hook):
    """For ``model.bn_mode='reestimate'``: before the first training
    iteration (after Stage I made the set, and not again on a resume), a
    no-grad pass of the quantized student over ``num_batches`` training
    batches replaces its BN running statistics by their cumulative average
    (``QuantDistillAlgorithm.reestimate_bn``); BN stays frozen afterwards.
    A no-op for any other ``bn_mode``."""
    priority = 'LOW'

    def __init__(self, num_batches: int = 8):
        assert num_batches >= 1, 'num_batches must be >= 1'
        self.num_batches = num_batches

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if getattr(model, 'bn_mode', None) != 'reestimate' or \
                runner.iter > 0:
            return
        # the train loop's own iterator: a second iterator over an
        # InfiniteSampler dataloader shares the sampler's one index
        # generator, and closing it ends that generator for the loop too
        # (MMEngine's InfiniteSampler; the loop then stops at its next
        # batch)
        source = getattr(runner.train_loop, 'dataloader_iterator', None)
        if source is None:
            source = iter(runner.train_dataloader)
        n = model.reestimate_bn(
            next(source) for _ in range(self.num_batches))
        runner.logger.info(f'BNReestimateHook: student BN statistics '
                           f're-estimated over {n} batches')
