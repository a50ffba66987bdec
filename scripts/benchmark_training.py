"""Benchmark training throughput: iterations/s, images/s and the data-loading share of a
step, with one process or several (torchrun, one process per GPU or, on a CPU-only
machine, gloo processes sharing its cores).

    # built-in synthetic config: a small generated paired set, SGENet at a chosen width
    python scripts/benchmark_training.py --width 16,24,32 --num-rdm 1 --crop 64 --batch 4 --iters 30 --nproc 1 2
    # your own option file (its dataset, network and loader; overrides are optional),
    # 1 and 8 GPUs at the recipe's total batch of 16, fp32 and bf16
    python scripts/benchmark_training.py -opt options/train_SGENet_GoPro.yml --nproc 1 8 --total-batch 16 \\
        --precision fp32 bf16 --iters 200 --warmup 20 --out benchmark.md

Every crop x precision x workers x processes combination is one run of the trainer users
run (``basicsr_sgenet/train.py``, BasicSR's ``train_pipeline``; with ``--nproc N > 1``
through ``python -m torch.distributed.run --nproc_per_node=N ... --launcher pytorch``,
nccl on GPUs, gloo without) on a copy of the options made for measuring: ``total_iter``
set to ``--iters``, a log line every iteration, no validation, no checkpoints before the
end, no tensorboard/wandb, ``train.mixed_precision`` set from ``--precision``.

What the numbers are. BasicSR's log line ``time (data): T (D)`` holds *running averages*
since the first iteration (``basicsr.utils.AvgTimer``, restarted every 201 iterations) of

* T, the step time: from asking the loader for the next batch to the end of
  ``optimize_parameters`` (loading, forward, backward, optimizer step); logging,
  checkpoints and validation are outside it;
* D, the data time: the part of T spent waiting for the batch (``prefetcher.next()``).
  With data-loader workers this is only the loading that they did *not* hide behind the
  previous step's compute.

This script turns the averages back into per-iteration totals, drops the first
``--warmup`` iterations (process start-up, loader workers starting, cudnn autotuning,
allocator growth) and reports, for rank 0 (all ranks step together):

* Step (ms): mean T over the measured iterations; it/s = 1 / Step: global optimizer
  steps per second of the whole run; images/s = it/s x total batch (batch per process x
  processes);
* Data share (%): mean D / mean T.

The clock of the log lines (their millisecond timestamps) is used as a cross-check: a
run whose it/s disagrees with it by more than 15% is flagged under the table.
"""
import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)  # basicsr_sgenet, when run as a file from a checkout
TRAIN_SCRIPT = os.path.join(REPO_ROOT, 'basicsr_sgenet', 'train.py')
GOPRO_RECIPE = os.path.join(REPO_ROOT, 'options', 'train_SGENet_GoPro.yml')

from basicsr_sgenet.archs.sgenet_arch import PAPER_CHANNELS  # noqa: E402
from basicsr_sgenet.tools.experiment_logs import parse_log_text, step_statistics  # noqa: E402
from basicsr_sgenet.tools.machine import cpu_model_name  # noqa: E402

COLUMNS = ['Config', 'Processes', 'Total batch', 'Step (ms)', 'it/s', 'Images/s', 'Data share (%)', 'Device']


# --------------------------------------------------------------------------- synthetic data

def write_synthetic_pairs(root, count, size, seed=0):
    """``count`` sharp/blurred PNG pairs of ``size`` x ``size`` under ``root/{sharp,blur}``.

    Each "photo" is a smooth random colour image; the pair is a window of it and the same
    window under GoPro-style camera-shake blur (``basicsr_sgenet.data.synthetic_blur``,
    also behind the demo). PNG decoding is what BasicSR's disk and LMDB loaders pay per
    sample, so loading costs about what real frames of this size cost."""
    import cv2
    import numpy as np

    from basicsr_sgenet.data.synthetic_blur import synthesize_pair

    rng = np.random.default_rng(seed)
    folders = {side: os.path.join(root, side) for side in ('sharp', 'blur')}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    photo_size = size + 32  # room for the shake around the window
    for index in range(count):
        coarse = rng.uniform(0, 255, size=(photo_size // 8, photo_size // 8, 3)).astype(np.float32)
        photo = cv2.resize(coarse, (photo_size, photo_size), interpolation=cv2.INTER_CUBIC)
        sharp, blur, _ = synthesize_pair(photo.clip(0, 255).astype(np.uint8), rng, size, size)
        for side, image in (('sharp', sharp), ('blur', blur)):
            if not cv2.imwrite(os.path.join(folders[side], f'{index:04d}.png'), image):
                raise OSError(f'could not write {folders[side]}/{index:04d}.png')
    return folders['sharp'], folders['blur']


def synthetic_options(data_root, channels, num_rdm):
    """The GoPro recipe (options/train_SGENet_GoPro.yml: model, loss, optimizer, loader) on
    the synthetic pairs, read from disk."""
    from basicsr_sgenet.integration.options import load_options
    return load_options(GOPRO_RECIPE, {
        'name': 'synthetic',
        'datasets': {'train': {'dataroot_gt': os.path.join(data_root, 'sharp'),
                               'dataroot_lq': os.path.join(data_root, 'blur'), 'io_backend': {'type': 'disk'},
                               'num_worker_per_gpu': 2}},
        'network_g': {'channels': list(channels), 'num_rdm': num_rdm},
    })


# --------------------------------------------------------------------------- one run

@dataclass
class Run:
    crop: int
    precision: str
    workers: int
    nproc: int
    batch: int  # per process

    def label(self, base_label):
        workers = f'{self.workers} worker' + ('' if self.workers == 1 else 's')
        return f'{base_label}, crop {self.crop}, {self.precision}, {workers}/proc'


@dataclass
class Result:
    run: Run
    config: str
    device: str
    step_s: Optional[float] = None
    data_s: Optional[float] = None
    clock_step_s: Optional[float] = None  # from the log lines' timestamps, for the cross-check
    measured: int = 0
    error: str = ''
    load: str = ''  # 1-minute load average before and after the run: how busy the machine was

    def cells(self):
        total_batch = self.run.batch * self.run.nproc
        if self.error:
            return [self.config, str(self.run.nproc), str(total_batch), 'failed: ' + self.error, '–', '–', '–',
                    self.device]
        its = 1 / self.step_s
        return [self.config, str(self.run.nproc), str(total_batch), f'{self.step_s * 1000:.0f}', f'{its:.2f}',
                f'{its * total_batch:.1f}', f'{100 * self.data_s / self.step_s:.1f}', self.device]


def measuring_options(base, run, iters, cuda):
    """A copy of ``base`` that runs ``iters`` iterations of ``run``, logging every one."""
    opt = copy.deepcopy(base)
    opt['name'] = 'benchmark_' + re.sub(r'[^\w.-]+', '_', str(opt.get('name', 'run'))).replace('debug', 'dbg')
    opt['num_gpu'] = 1 if cuda else 0  # per process; with 1 process: no DataParallel over other GPUs
    opt['datasets'] = {'train': opt['datasets']['train']}  # no validation sets
    opt.pop('val', None)
    train_set = opt['datasets']['train']
    train_set.pop('total_batch_size', None)  # the batch per process is what is measured
    train_set.update(gt_size=run.crop, num_worker_per_gpu=run.workers, batch_size_per_gpu=run.batch)
    opt['path'] = dict(opt.get('path') or {}, pretrain_network_g=None, resume_state=None)
    opt['train']['total_iter'] = iters
    opt['train']['mixed_precision'] = None if run.precision == 'fp32' else run.precision
    opt['dist_params'] = dict(opt.get('dist_params') or {}, backend='nccl' if cuda else 'gloo')
    opt['logger'] = {'print_freq': 1, 'save_checkpoint_freq': 10 * iters + 1000, 'use_tb_logger': False,
                     'wandb': {'project': None}}
    return opt


def launch_command(nproc, option_file):
    if nproc == 1:
        return [sys.executable, TRAIN_SCRIPT, '-opt', option_file]
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}',
            TRAIN_SCRIPT, '-opt', option_file, '--launcher', 'pytorch']


def run_training(run_dir, opt, nproc, threads, cuda, timeout):
    """Run the trainer in ``run_dir``; returns the text of its training log."""
    from basicsr_sgenet.integration.options import write_option_file
    option_file = write_option_file(os.path.join(run_dir, 'options.yml'), opt)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get('PYTHONPATH')])))
    if not cuda:
        env['CUDA_VISIBLE_DEVICES'] = ''  # CPU run: BasicSR and the compat layer then choose the CPU and gloo
    output_file = os.path.join(run_dir, 'output.txt')
    with open(output_file, 'w') as output:
        try:
            done = subprocess.run(launch_command(nproc, option_file), cwd=run_dir, env=env, stdout=output,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f'no result within {timeout} s (see {output_file})') from None
    if done.returncode != 0:
        with open(output_file, errors='replace') as f:
            tail = f.read()[-3000:]
        print(tail, file=sys.stderr)
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        # The reason rather than torchrun's closing banner: the entry point's "error: ..." line,
        # else the last exception line other than torchrun's ChildFailedError, else the last line.
        reasons = ([line for line in lines if line.startswith('error: ')]
                   or [line for line in lines if re.match(r'[\w.]*(Error|Exception)\b', line)
                       and 'ChildFailedError' not in line] or lines or [''])
        raise RuntimeError(f'exit status {done.returncode}: {reasons[-1][:120]} (see {output_file})')
    logs = sorted(os.path.join(root, name) for root, _, names in os.walk(os.path.join(run_dir, 'experiments'))
                  for name in names if name.startswith('train_') and name.endswith('.log'))
    if not logs:
        raise RuntimeError(f'the trainer wrote no training log (see {output_file})')
    with open(logs[-1], errors='replace') as f:
        return f.read()


# --------------------------------------------------------------------------- machine, table

def load_average():
    return f'{os.getloadavg()[0]:.1f}' if hasattr(os, 'getloadavg') else '?'


def device_label(cuda, nproc, threads):
    if cuda:
        import torch
        return f'{nproc}x {torch.cuda.get_device_name(0)}'
    return f'CPU {cpu_model_name()} ({os.cpu_count()} cores), {threads} thread(s)/proc'


def markdown(results, notes):
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(cell.replace('|', '/') for cell in result.cells()) + ' |' for result in results]
    return '\n'.join(lines + [''] + notes) + '\n'


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', help='training option file to benchmark (default: the built-in synthetic '
                        'config); its dataset, network and loader settings are used unless overridden below')
    parser.add_argument('--width', help='SGENet channels per level, e.g. 16,24,32 (synthetic default: the '
                        'paper\'s 96,120,144; with -opt: the file\'s)')
    parser.add_argument('--num-rdm', type=int, help='RDMs per level (synthetic default: 2, the paper\'s)')
    parser.add_argument('--crop', type=int, nargs='+', help='training crop size(s) (gt_size); default: 256, or '
                        'the file\'s')
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument('--batch', type=int, help='batch size per process (default: 4, or the file\'s '
                       'batch_size_per_gpu); the total batch is this x processes')
    batch.add_argument('--total-batch', type=int, help='keep this total batch for every --nproc instead: '
                       'batch per process = total / processes (the GoPro recipe keeps 16)')
    parser.add_argument('--iters', type=int, default=30, help='iterations per run (default: 30)')
    parser.add_argument('--warmup', type=int, default=5, help='first iterations left out of the means (default: 5)')
    parser.add_argument('--nproc', type=int, nargs='+', default=[1], help='process counts to compare (default: 1)')
    parser.add_argument('--workers', type=int, nargs='+', help='data-loader workers per process (default: 2, or '
                        'the file\'s num_worker_per_gpu)')
    parser.add_argument('--precision', nargs='+', default=['fp32'], choices=['fp32', 'bf16', 'fp16'],
                        help='training precision(s): train.mixed_precision (default: fp32; fp16 needs CUDA)')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                        help='auto: CUDA when available (one GPU per process), else the CPU')
    parser.add_argument('--threads', type=int, help='torch threads per process (OMP_NUM_THREADS; default: CPU '
                        'cores / processes on the CPU, 1 with CUDA)')
    parser.add_argument('--images', type=int, default=32, help='synthetic pairs to generate (default: 32)')
    parser.add_argument('--image-size', type=int, default=512, help='synthetic image side in pixels (default: '
                        '512, the GoPro recipe\'s LMDB sub-image size)')
    parser.add_argument('--timeout', type=int, default=3600, help='seconds allowed per run (default: 3600)')
    parser.add_argument('--workdir', help='keep data, options, logs and outputs of every run here (default: a '
                        'temporary folder, removed at the end)')
    parser.add_argument('--out', help='also write the table (Markdown) to this file')
    args = parser.parse_args(argv)
    if args.iters <= args.warmup or args.warmup < 0:
        parser.error('--iters must be larger than --warmup, and --warmup >= 0')
    if min(args.nproc) < 1 or min(args.batch or 1, args.total_batch or 1) < 1:
        parser.error('--nproc, --batch and --total-batch must be positive')
    if args.total_batch and any(args.total_batch % nproc for nproc in args.nproc):
        parser.error(f'--total-batch {args.total_batch} must be divisible by every --nproc')
    if args.workers is not None and min(args.workers) < 0:
        parser.error('--workers must be >= 0')
    if args.width:
        try:
            args.width = [int(value) for value in args.width.split(',')]
        except ValueError:
            parser.error(f'--width {args.width!r} is not a comma-separated list of channel counts, e.g. 16,24,32')
    return args


def base_options(args, workdir):
    """(options, label) for the runs: the option file's or the synthetic config's."""
    if args.opt:
        from basicsr_sgenet.integration.options import read_option_file
        opt = read_option_file(args.opt)
        network = opt['network_g']
        label = os.path.splitext(os.path.basename(args.opt))[0]
    else:
        crops = args.crop or [256]
        if args.image_size < max(crops):
            raise SystemExit(f'error: --image-size {args.image_size} is smaller than --crop {max(crops)}')
        print(f'writing {args.images} synthetic {args.image_size}x{args.image_size} pairs ...', file=sys.stderr)
        data_root = os.path.join(workdir, 'data')
        write_synthetic_pairs(data_root, args.images, args.image_size)
        opt = synthetic_options(data_root, PAPER_CHANNELS, 2)  # the paper's network
        network = opt['network_g']
        label = 'synthetic'
    if args.width:
        network['channels'] = args.width
    if args.num_rdm is not None:
        network['num_rdm'] = args.num_rdm
    if network.get('type') == 'SGENet' and (args.width or args.num_rdm is not None or not args.opt):
        channels = network.get('channels', PAPER_CHANNELS)
        label += f' SGENet [{",".join(str(c) for c in channels)}] x{network.get("num_rdm", 2)} RDM'
    return opt, label


def main(argv=None):
    args = parse_args(argv)
    import torch  # after argument parsing, so --help is instant

    cuda = args.device == 'cuda' or (args.device == 'auto' and torch.cuda.is_available())
    if cuda and max(args.nproc) > torch.cuda.device_count():
        raise SystemExit(f'error: --nproc {max(args.nproc)} needs as many GPUs, {torch.cuda.device_count()} visible')
    if not cuda and 'fp16' in args.precision:
        raise SystemExit('error: --precision fp16 needs CUDA; use bf16 on the CPU')

    workdir = args.workdir or tempfile.mkdtemp(prefix='benchmark_training_')
    os.makedirs(workdir, exist_ok=True)
    results = []
    try:
        opt, base_label = base_options(args, workdir)
        train_set = opt['datasets']['train']
        crops = args.crop or [train_set.get('gt_size', 256)]
        workers_list = args.workers if args.workers is not None else [train_set.get('num_worker_per_gpu', 2)]
        def batch_per_process(nproc):
            if args.total_batch:
                return args.total_batch // nproc
            return args.batch or train_set.get('batch_size_per_gpu', 4)

        if not args.opt:
            # One epoch covers every run: BasicSR restarts the loader's workers at each epoch,
            # a cost that a real dataset pays once in hundreds of iterations, not every few.
            largest_total = max(batch_per_process(nproc) * nproc for nproc in args.nproc)
            train_set['dataset_enlarge_ratio'] = -(-(args.iters + 1) * largest_total // args.images)

        runs = [Run(crop, precision, workers, nproc, batch_per_process(nproc)) for crop in crops
                for precision in args.precision for workers in workers_list for nproc in args.nproc]
        for index, run in enumerate(runs, 1):
            threads = args.threads or (1 if cuda else max(1, (os.cpu_count() or 1) // run.nproc))
            result = Result(run, run.label(base_label), device_label(cuda, run.nproc, threads))
            print(f'[{index}/{len(runs)}] {result.config}, {run.nproc} process(es) ...', file=sys.stderr,
                  flush=True)
            started, load_before = time.time(), load_average()
            try:
                log_text = run_training(os.path.join(workdir, f'run{index:02d}'),
                                        measuring_options(opt, run, args.iters, cuda), run.nproc, threads, cuda,
                                        args.timeout)
                result.step_s, result.data_s, result.clock_step_s, result.measured = step_statistics(
                    parse_log_text(log_text), args.warmup)
            except (RuntimeError, ValueError) as err:
                result.error = str(err)
            result.load = f'{load_before} -> {load_average()}'
            print(f'    {"failed" if result.error else "done"} in {time.time() - started:.0f} s', file=sys.stderr)
            results.append(result)

        notes = [f'{args.iters} iterations per run, the first {args.warmup} left out; times are rank 0\'s BasicSR '
                 'log values `time (data)` (running averages turned back into per-iteration totals). Total batch = '
                 'batch per process x processes; it/s = global optimizer steps per second; data share = time '
                 'waiting for the next batch / step time.']
        if not args.opt:
            notes.append(f'Data: {args.images} synthetic {args.image_size}x{args.image_size} PNG pairs with camera-'
                         'shake blur (PairedImageDataset, disk backend, random crop + horizontal flip).')
        notes.append(f'torch {torch.__version__}; ' + ('nccl' if cuda else 'gloo') + ' for more than one process.')
        if not cuda:
            notes.append(f'1-minute load average before -> after each run ({os.cpu_count()} cores): '
                         + '; '.join(result.load for result in results) + '.')
        for result in results:
            if not result.error and abs(result.clock_step_s / result.step_s - 1) > 0.15:
                notes.append(f'Check: "{result.config}", {result.run.nproc} process(es): the log clock says '
                             f'{result.clock_step_s * 1000:.0f} ms per iteration, the logged step time '
                             f'{result.step_s * 1000:.0f} ms (logging or other load in between?).')
        table = markdown(results, notes)
        print(table)
        if args.out:
            with open(args.out, 'w') as f:
                f.write(table)
        return 1 if any(result.error for result in results) else 0
    finally:
        if any(result.error for result in results):
            print(f'kept {workdir}: outputs of the failed runs', file=sys.stderr)
        elif not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
