"""Fitting a training run into a wall-clock budget.

The same option file costs 0.2 s per iteration on one CPU and 1 s on another, so a fixed
iteration count cannot keep a time promise. Instead: build the run's model and data the
way BasicSR's trainer does, time real optimisation steps one by one until their pace
has settled (the first steps pay for memory allocation, kernel selection and caches, and
on a busy or frequency-scaling machine for much more: a demo once timed 0.83 s a step at
the start and then trained at 0.3 s), and choose the iteration count that fits from the
settled pace; the slow start is counted once, as set-up. The schedule (warm-up, cosine)
then spans exactly the iterations that will run.
"""
import copy
import math
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class StepTiming:
    """What one calibration measured."""
    seconds_per_iter: float
    seconds_per_validation: float  # one pass over the validation set, metrics included
    setup_seconds: float           # building the model and datasets: paid again by the trainer


@dataclass(frozen=True)
class Pace:
    """What ``settled_pace`` measured."""
    seconds_per_iter: float  # the median of the last window of steps, once settled
    steps: int               # steps run in all
    settled: bool            # False: stopped by max_steps / max_seconds before the pace settled
    start_up_seconds: float  # what the steps before the last window cost beyond the settled pace


def settled_pace(step, clock=time.perf_counter, window=3, tolerance=0.15, max_steps=40, max_seconds=30.0):
    """Call ``step()`` and time each call with ``clock`` until the pace settles: the
    median of the last ``window`` steps is within ``tolerance`` (relative) of the median
    of the ``window`` before, re-fitting the estimate after every step. Stops early after
    ``max_steps`` steps or ``max_seconds`` (then the last window is the best estimate)."""
    durations = []
    started = clock()
    settled = False
    while True:
        before = clock()
        step()
        durations.append(clock() - before)
        if len(durations) >= 2 * window:
            recent = statistics.median(durations[-window:])
            earlier = statistics.median(durations[-2 * window:-window])
            if abs(recent - earlier) <= tolerance * recent:
                settled = True
                break
        if len(durations) >= max_steps or clock() - started >= max_seconds:
            break
    pace = statistics.median(durations[-window:])
    start_up = sum(durations[:-window]) - pace * (len(durations) - window)
    return Pace(pace, len(durations), settled, max(0.0, start_up))


def _prepared(opt):
    """``opt`` completed the way BasicSR's ``parse_options`` completes it for one process."""
    import torch
    from basicsr_sgenet.integration.patches import split_total_batch_size

    opt = copy.deepcopy(opt)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    if opt.get('num_gpu', 'auto') == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
        dataset['scale'] = opt.get('scale', 1)
    split_total_batch_size(opt)
    return opt


def measure_step_timing(opt, max_seconds=30.0, clock=time.perf_counter):
    """Time training iterations of ``opt`` (a complete training option dict) until their
    pace settles (``settled_pace``, at most ``max_seconds``), and one validation pass.
    Runs in this process; prints nothing."""
    import logging

    import torch
    from basicsr.data import build_dataset
    from basicsr.models import build_model
    from basicsr.utils import get_root_logger

    get_root_logger(log_level=logging.ERROR)  # BasicSR's model build would print the network
    started = time.perf_counter()
    opt = _prepared(opt)
    train_set = build_dataset(opt['datasets']['train'])
    val_phase = next(phase for phase in opt['datasets'] if phase.startswith('val'))
    val_set = build_dataset(opt['datasets'][val_phase])
    model = build_model(opt)
    batch_size = opt['datasets']['train']['batch_size_per_gpu']
    generator = torch.Generator().manual_seed(0)

    def train_step(iteration):
        indices = torch.randint(len(train_set), (batch_size,), generator=generator).tolist()
        model.feed_data(torch.utils.data.default_collate([train_set[i] for i in indices]))
        model.optimize_parameters(iteration)

    iterations = iter(range(1, 10**6))
    build_seconds = time.perf_counter() - started
    pace = settled_pace(lambda: train_step(next(iterations)), clock=clock, max_seconds=max_seconds)
    seconds_per_iter = pace.seconds_per_iter
    # The trainer builds the same model and data again, and its first steps are as slow.
    setup_seconds = build_seconds + pace.start_up_seconds

    timed = time.perf_counter()
    model.net_g.eval()
    with torch.no_grad():
        for index in range(len(val_set)):
            model.feed_data({key: value[None] if torch.is_tensor(value) else value
                             for key, value in val_set[index].items()})
            model.test()
    seconds_per_validation = (time.perf_counter() - timed) * 1.2  # + metrics and logging
    return StepTiming(seconds_per_iter, seconds_per_validation, setup_seconds)


def iterations_for_budget(budget_seconds, timing, validations, minimum=10, maximum=None):
    """Iterations that fit ``budget_seconds`` of training: what is left after the
    trainer's own set-up and ``validations`` passes over the validation set, divided by
    the time per iteration; at least ``minimum`` (a run must train), at most ``maximum``."""
    spare = budget_seconds - timing.setup_seconds - validations * timing.seconds_per_validation
    iterations = max(minimum, int(spare / timing.seconds_per_iter))
    return iterations if maximum is None else min(iterations, maximum)


def print_frequency(seconds_per_iter, every_seconds=3.0):
    """Iterations between progress lines so that one comes about every ``every_seconds``."""
    return max(1, int(every_seconds / seconds_per_iter))


def validation_frequency(iterations, validations, print_freq):
    """Iterations between validations: ``validations`` passes spread over the run, each
    on an iteration that also prints progress (so logs tie the scores to an iteration)."""
    interval = max(1, math.ceil(iterations / max(validations, 1)))
    return max(print_freq, interval - interval % print_freq)


def _stretched(lengths, total):
    """Integer ``lengths`` scaled to add up to ``total`` (each at least 1; the last absorbs rounding)."""
    scale = total / sum(lengths)
    scaled = [max(1, round(length * scale)) for length in lengths[:-1]]
    return scaled + [max(1, total - sum(scaled))]


def stretch_schedule(train, iters):
    """Set ``train.total_iter`` to ``iters`` and stretch the recipe's schedule to match,
    keeping its shape: cosine periods, step milestones and progressive-patch stages
    scale with the run's length."""
    original = train.get('total_iter')
    train['total_iter'] = iters
    scheduler = train.get('scheduler') or {}
    if scheduler.get('periods'):
        scheduler['periods'] = _stretched(list(scheduler['periods']), iters)
    if scheduler.get('milestones') and original:
        scheduler['milestones'] = [max(1, round(m * iters / original)) for m in scheduler['milestones']]
    progressive = train.get('progressive') or {}
    if progressive.get('iters'):
        progressive['iters'] = _stretched(list(progressive['iters']), iters)
