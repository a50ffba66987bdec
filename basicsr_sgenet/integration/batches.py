"""How a training run's batch is laid out over processes and GPUs, checked before BasicSR
writes anything.

BasicSR runs either one process per GPU (torchrun / slurm: ``batch_size_per_gpu`` per
process) or one process for every GPU of ``num_gpu`` (DataParallel: the process loads
``batch_size_per_gpu x num_gpu`` and scatters it). Recipes give the batch the authors
trained with as a total, which this module turns into per-process numbers:

* ``datasets.train.total_batch_size``: the loaded batch of the whole run;
* ``train.progressive.total_mini_batch_sizes``: the progressive stages' batches of the
  whole run (``mini_batch_sizes`` is the per-process form);
* ``train.accumulate``: micro-batches per optimizer step, so a smaller machine runs the
  same total batch in smaller forward passes.

Every mistake is one OptionError naming the key, raised by ``check_batches`` from the
entry points before ``experiments/`` exists, and again by the model.
"""
import os

from basicsr_sgenet.integration.errors import OptionError


def resolve_num_gpu(num_gpu, device_count):
    """GPUs one process uses: ``auto`` means one GPU (or none), not DataParallel over every
    GPU of the host; an integer is taken as asked."""
    if num_gpu in (None, 'auto'):
        return min(device_count, 1)
    return num_gpu


def run_layout(opt, launcher, device_count=None):
    """``(processes, gpus_per_process)`` for ``opt`` started with ``--launcher``."""
    import torch
    if device_count is None:
        device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if launcher == 'pytorch':
        return int(os.environ.get('WORLD_SIZE', '1')), min(device_count, 1)
    if launcher == 'slurm':
        return int(os.environ.get('SLURM_NTASKS', '1')), min(device_count, 1)
    num_gpu = resolve_num_gpu(opt.get('num_gpu', 'auto'), device_count)
    return 1, (num_gpu if isinstance(num_gpu, int) and not isinstance(num_gpu, bool) else 1)


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def accumulate_steps(train_opt):
    """``train.accumulate`` (micro-batches per optimizer step; 1 when absent)."""
    value = (train_opt or {}).get('accumulate', 1)
    if value is None:
        return 1
    if not _positive_int(value):
        raise OptionError(f'train.accumulate must be a positive integer (micro-batches per step), not {value!r}.')
    return value


def per_process_batch(train_dataset, processes, gpus_per_process):
    """The batch one process loads, from ``total_batch_size`` or ``batch_size_per_gpu``."""
    total = train_dataset.get('total_batch_size')
    shares = processes if processes > 1 else max(gpus_per_process, 1)
    if total is not None:
        if not _positive_int(total) or total % shares:
            raise OptionError(f'datasets.train.total_batch_size is {total!r}: it must be a positive integer '
                              f'divisible by the {shares} processes/GPUs this run uses.')
        per_gpu = total // shares
        given = train_dataset.get('batch_size_per_gpu')
        if given is not None and given != per_gpu:
            raise OptionError(f'datasets.train.batch_size_per_gpu is {given} but total_batch_size {total} over '
                              f'{shares} processes/GPUs gives {per_gpu}: set only one of the two.')
    else:
        per_gpu = train_dataset.get('batch_size_per_gpu')
        if not _positive_int(per_gpu):
            raise OptionError(f'datasets.train.batch_size_per_gpu must be a positive integer, not {per_gpu!r} '
                              '(or give datasets.train.total_batch_size).')
    # In one process, DataParallel loads the batch of every GPU and scatters it.
    return per_gpu * (1 if processes > 1 else max(gpus_per_process, 1))


def progressive_mini_batches(progressive, processes):
    """Per-process progressive batches from ``train.progressive`` (None without it):
    ``total_mini_batch_sizes`` divided by the processes, or ``mini_batch_sizes`` as given."""
    if not isinstance(progressive, dict):
        return None
    total, per_process = progressive.get('total_mini_batch_sizes'), progressive.get('mini_batch_sizes')
    if total is not None and per_process is not None:
        raise OptionError('train.progressive: give total_mini_batch_sizes (the whole run\'s batches) or '
                          'mini_batch_sizes (per process), not both.')
    if total is None:
        return per_process
    if not isinstance(total, (list, tuple)) or not all(_positive_int(value) for value in total):
        raise OptionError(f'train.progressive.total_mini_batch_sizes must be a list of positive integers, '
                          f'got {total!r}.')
    uneven = [value for value in total if value % processes]
    if uneven:
        raise OptionError(f'train.progressive.total_mini_batch_sizes {list(total)}: {uneven[0]} cannot be split '
                          f'evenly over the {processes} processes of this run.')
    return [value // processes for value in total]


def check_batches(opt, processes, gpus_per_process):
    """Raise OptionError for a batch layout that cannot run as asked (see module docstring)."""
    from basicsr_sgenet.integration.precision import parse_precision
    train_opt = opt.get('train') or {}
    dataset = (opt.get('datasets') or {}).get('train')
    if not isinstance(dataset, dict):
        return
    loaded = per_process_batch(dataset, processes, gpus_per_process)
    accumulate = accumulate_steps(train_opt)
    batches = {'datasets.train batch per process': loaded}
    stages = progressive_mini_batches(train_opt.get('progressive'), processes)
    if stages:
        if max(stages) > loaded:
            raise OptionError(f'train.progressive: a stage keeps {max(stages)} samples per process but the loader '
                              f'yields {loaded} per process (datasets.train): raise total_batch_size or lower the '
                              'stage batches.')
        batches = {f'train.progressive stage {index + 1} batch per process': value
                   for index, value in enumerate(stages)}
    for what, batch in batches.items():
        if batch % accumulate:
            raise OptionError(f'train.accumulate is {accumulate} but the {what} is {batch}: each batch must split '
                              'into equal micro-batches.')
    if processes == 1 and gpus_per_process > 1:
        for section in ('train', 'val'):
            try:
                precision = parse_precision((opt.get(section) or {}).get('mixed_precision'), section)
            except ValueError:
                continue  # check_options names it
            if precision != 'fp32':
                raise OptionError(
                    f'{section}.mixed_precision is {precision} with num_gpu {gpus_per_process} in one process '
                    '(DataParallel), whose replica threads lose the autocast dtype (bf16 runs as fp16 without a '
                    'gradient scaler): use torchrun --nproc_per_node=N ... --launcher pytorch, or num_gpu: 1.')
