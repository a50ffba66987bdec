"""Progressive patch sizes (Restormer's "progressive learning"): training starts on small
crops and large batches and moves to larger crops and smaller batches in stages.

As in Restormer's trainer, the data loader always yields its full ``gt_size`` crops and
batch; at each iteration the model keeps a random sub-batch of the samples and one random
``gt_sizes[stage]`` window shared by the whole batch::

    train:
      progressive:
        iters: [92000, 64000, 48000, 36000, 36000, 24000]
        gt_sizes: [128, 160, 192, 256, 320, 384]
        total_mini_batch_sizes: [64, 40, 32, 16, 8, 8]   # the whole run's, like total_batch_size

``total_mini_batch_sizes`` keeps the recipe's batch whatever the number of processes (the
authors' per-GPU ``[8, 5, 4, 2, 1, 1]`` on 8 GPUs); ``mini_batch_sizes`` is the per-process
form (then the total scales with the GPU count). Under DataParallel the sub-batch is
taken in the one process, before the scatter.
"""
import random

from basicsr_sgenet.integration.errors import OptionError


class ProgressivePatches:
    """Args: iters, gt_sizes, mini_batch_sizes (lists of positive ints of one length)."""

    # The keys of ``train.progressive``: the constructor's, plus the whole run's batches
    # that ``from_options`` splits over the processes.
    OPTION_KEYS = ('iters', 'gt_sizes', 'mini_batch_sizes', 'total_mini_batch_sizes')

    def __init__(self, iters, gt_sizes, mini_batch_sizes):
        self.iters, self.gt_sizes, self.mini_batch_sizes = list(iters), list(gt_sizes), list(mini_batch_sizes)
        self.ends = [sum(self.iters[:i + 1]) for i in range(len(self.iters))]

    @classmethod
    def from_options(cls, train_opt, where='train.progressive', processes=1):
        """From ``train.progressive`` (None when absent) for a run of ``processes``
        processes; OptionError naming the key."""
        from basicsr_sgenet.integration.batches import progressive_mini_batches
        settings = train_opt.get('progressive')
        if settings is None:
            return None
        if not isinstance(settings, dict):
            raise OptionError(f'{where} must be a mapping with iters, gt_sizes and (total_)mini_batch_sizes.')
        lists = {}
        settings = dict(settings, mini_batch_sizes=progressive_mini_batches(settings, processes))
        for key in ('iters', 'gt_sizes', 'mini_batch_sizes'):
            value = settings.get(key)
            if (not isinstance(value, (list, tuple)) or not value
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
                raise OptionError(f'{where}.{key} must be a non-empty list of positive integers, got {value!r}.')
            lists[key] = value
        if len({len(value) for value in lists.values()}) != 1:
            raise OptionError(f'{where}: iters, gt_sizes and mini_batch_sizes must have the same length.')
        return cls(**lists)

    def stage(self, current_iter):
        """Index of the stage ``current_iter`` (1-based) belongs to (the last one past the end)."""
        return next((i for i, end in enumerate(self.ends) if current_iter <= end), len(self.ends) - 1)

    def select(self, lq, gt, current_iter):
        """The stage's random sub-batch and random shared window of an (lq, gt) batch."""
        stage = self.stage(current_iter)
        batch, size = self.mini_batch_sizes[stage], self.gt_sizes[stage]
        if batch < lq.shape[0]:
            keep = random.sample(range(lq.shape[0]), k=batch)
            lq, gt = lq[keep], gt[keep]
        height, width = gt.shape[-2:]
        if size < height or size < width:
            top = int((height - min(size, height)) * random.random())
            left = int((width - min(size, width)) * random.random())
            lq = lq[..., top:top + size, left:left + size]
            gt = gt[..., top:top + size, left:left + size]
        return lq, gt
