"""SGENet demo: synthetic GoPro-style data, LMDB preparation, a CPU training run through
BasicSR's trainer that fits a wall-clock budget, and side-by-side results on a held-out
photo. Nothing is downloaded: the photos are the ones bundled with scikit-image.

    python scripts/demo.py                     # about 5 minutes on a 2-core CPU
    python scripts/demo.py --minutes 10        # a longer budget
    python scripts/demo.py --quick             # a smoke test, well under a minute

Everything goes into the workspace (default ``demo_workspace/``)::

    GOPRO_demo/{train,test}/<photo>/{blur,blur_gamma,sharp}/*.png   GoPro's layout
    datasets/GoPro/{train,test}/{blur,sharp}.lmdb                   scripts/prepare_gopro.py's output
    options/train_SGENet_demo.yml                                   the option file trained with
    experiments/SGENet_demo/   tb_logger/SGENet_demo/               BasicSR's run folders
    results/side_by_side/<key>.png                                  blurred | restored | sharp, and a zoom

The option file is options/train_SGENet_GoPro.yml (the paper's recipe) with the
overrides below; the iteration count is chosen by timing a few real training steps on
this machine, so the run keeps its time on a slow CPU as on a fast one.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.data.synthetic_blur import ShakeSettings  # noqa: E402
from basicsr_sgenet.data.synthetic_gopro import SyntheticGoProSettings  # noqa: E402
from basicsr_sgenet.integration.errors import DemoError, exit_on_user_error  # noqa: E402
from basicsr_sgenet.tools.clock import format_clock  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_OPTIONS = os.path.join(REPO_ROOT, 'options', 'train_SGENet_GoPro.yml')
EXPERIMENT = 'SGENet_demo'

# Why these settings (docs/studies.md, "Why the old demo gained 0.1 dB"): what a few CPU
# minutes teach a small network is a generic sharpening, about what the best single
# linear filter does; against GoPro-strength shake (the old demo: up to 8 px and 1 degree
# at this frame size) that is worth about 0.1 dB, whatever the width, learning rate or
# loss. A milder shake (up to 2 px and 0.25 degree: the rotation matters, 1 degree moves
# the corners of a 320-px frame by 2.8 px) is still visible in the 3x zoom and gains
# well over 1 dB. The narrowest SGENet that learns as fast trains the most iterations.
DATA = SyntheticGoProSettings(
    train_photos=('astronaut', 'coffee', 'rocket', 'motorcycle'), test_photos=('chelsea',),
    train_frames_per_photo=8, test_frames_per_photo=6, train_frame_size=(192, 256), test_frame_size=(240, 320),
    shake=ShakeSettings(max_extent=2.0, max_rotation=0.25))
QUICK_DATA = SyntheticGoProSettings(
    train_photos=('astronaut', 'coffee'), test_photos=('chelsea',), train_frames_per_photo=2,
    test_frames_per_photo=2, train_frame_size=(96, 128), test_frame_size=(96, 128), shake=ShakeSettings(max_extent=3.0))
SUBIMAGES = {'full': (128, 64), 'quick': (64, 32)}  # sub-image crop and step, as prepare_gopro cuts GoPro

# Overrides of options/train_SGENet_GoPro.yml; None removes a key.
OVERRIDES = {
    'name': EXPERIMENT,
    'network_g.channels': [16, 20, 24],   # paper: 96, 120, 144
    'network_g.num_rdm': 1,               # paper: 2
    'datasets.train.gt_size': 64,         # paper: 256
    'datasets.train.total_batch_size': 4,  # paper: 16
    'datasets.train.num_worker_per_gpu': 0,
    'train.optim_g.lr': 1e-3,             # paper: 2e-4, for 400x more iterations
    'train.warmup_iter': 50,
    'val.save_img': False,
    'val.metrics.psnr_matlab': None,      # equal to psnr
    'val.metrics.ssim_matlab': None,
    'logger.save_checkpoint_freq': 10**9,  # the final weights only
    'dist_params': None,
}
QUICK_OVERRIDES = {'network_g.channels': [8, 8, 8], 'datasets.train.gt_size': 32, 'datasets.train.total_batch_size': 2,
                   'train.warmup_iter': -1}
VALIDATIONS = 4  # during training, plus BasicSR's final one


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--workspace', default='demo_workspace', help='where everything is written')
    parser.add_argument('--minutes', type=float,
                        help='wall-clock budget of the whole demo (default 5; 0.4 with --quick)')
    parser.add_argument('--iters', type=int, help='train exactly this many iterations instead of fitting the budget')
    parser.add_argument('--quick', action='store_true', help='tiny data and network: a smoke test')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic blur')
    args = parser.parse_args(argv)
    if args.iters is not None and args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.minutes is not None and args.minutes <= 0:
        parser.error(f'--minutes must be positive, got {args.minutes}')
    return args


def training_options(dataset_root, quick):
    """options/train_SGENet_GoPro.yml with the demo's overrides and its datasets."""
    from basicsr_sgenet.integration.options import apply_overrides, read_option_file

    overrides = dict(OVERRIDES, **(QUICK_OVERRIDES if quick else {}))
    for split, phase in (('train', 'train'), ('test', 'val')):
        overrides[f'datasets.{phase}.dataroot_gt'] = os.path.join(dataset_root, split, 'sharp.lmdb')
        overrides[f'datasets.{phase}.dataroot_lq'] = os.path.join(dataset_root, split, 'blur.lmdb')
    return apply_overrides(read_option_file(BASE_OPTIONS), overrides)


def fit_budget(opt, train_seconds, fixed_iters, quick):
    """Set the iteration count, schedule, validation and print frequency in ``opt``;
    returns the calibration (None with --iters)."""
    from basicsr_sgenet.tools.training_budget import (iterations_for_budget, measure_step_timing, print_frequency,
                                                stretch_schedule, validation_frequency)

    timing = None
    if fixed_iters:
        iters, print_freq = fixed_iters, max(1, fixed_iters // 50)
    else:
        timing = measure_step_timing(opt)
        iters = iterations_for_budget(train_seconds, timing, VALIDATIONS + 1, minimum=5 if quick else 50)
        print_freq = print_frequency(timing.seconds_per_iter, every_seconds=3)
    train = opt['train']
    stretch_schedule(train, iters)
    if train.get('warmup_iter', -1) >= iters // 4:
        train['warmup_iter'] = -1
    opt['val']['val_freq'] = validation_frequency(iters, VALIDATIONS, print_freq)
    opt['logger']['print_freq'] = print_freq
    return timing


OPTIONS_HEADER = """\
# Written by the SGENet demo (python scripts/demo.py): options/train_SGENet_GoPro.yml, the
# paper's recipe, with the demo's overrides (a narrow SGENet, 64x64 crops, batch 4, a
# higher learning rate, {iters} iterations fitted to the time budget instead of 396,000).
# Train again with:  python -m basicsr_sgenet.train -opt options/train_SGENet_demo.yml
"""


def train(workspace, option_file, total_iters, blurred_psnr, seconds_per_iter):
    """BasicSR's trainer in a child process, with a short progress line every few seconds."""
    from basicsr_sgenet.tools.training_process import train_in_child

    started = time.time()
    reported = set()
    pace_from = {}  # the first progress line: the pace is measured from there, past the trainer's start-up

    def on_progress(progress):
        now = time.time()
        first_time, first_iteration = pace_from.setdefault('line', (now, progress.iteration))
        done = progress.iteration - first_iteration
        pace = (now - first_time) / done if done > 0 else seconds_per_iter
        loss = f'  loss {progress.loss:.4f}' if progress.loss is not None else ''
        eta = f'  ETA {format_clock((total_iters - progress.iteration) * pace)}' if pace else ''
        print(f'  iter {progress.iteration:5d}/{total_iters}{loss}  elapsed {format_clock(now - started)}{eta}', flush=True)

    def on_validation(validation):
        psnr = validation.metrics.get('psnr')
        # BasicSR validates once more after the last iteration; its log ties that to the last progress line.
        where = 'after the last iteration' if validation.iteration in reported else f'at iter {validation.iteration}'
        reported.add(validation.iteration)
        if psnr is not None:
            print(f'  validation {where}: PSNR {psnr:.2f} dB on the held-out frames '
                  f'(blurred input {blurred_psnr:.2f} dB, {psnr - blurred_psnr:+.2f} dB)', flush=True)

    console_log = os.path.join(workspace, 'train_console.log')
    if os.path.exists(console_log):
        os.remove(console_log)
    result = train_in_child(option_file, workspace, console_log, on_progress=on_progress,
                            on_validation=on_validation)
    if result.returncode != 0:
        raise DemoError(f'training failed (exit code {result.returncode}); its output is in {console_log}:\n'
                        f'{result.tail[-2000:]}')
    return time.time() - started


def held_out_frames(tree_root):
    """[(key, blurred RGB, sharp RGB)] of the test split."""
    import cv2

    frames = []
    test_root = os.path.join(tree_root, 'test')
    for sequence in sorted(os.listdir(test_root)):
        for name in sorted(os.listdir(os.path.join(test_root, sequence, 'sharp'))):
            pair = [cv2.cvtColor(cv2.imread(os.path.join(test_root, sequence, folder, name)), cv2.COLOR_BGR2RGB)
                    for folder in ('blur', 'sharp')]
            frames.append((f'{sequence}_{os.path.splitext(name)[0]}', *pair))
    return frames


def restore_held_out(option_file, weights, frames, out_dir):
    """Restore each held-out frame; write blurred | restored | sharp with a zoom on the
    most blurred region; return [(key, psnr blurred, psnr restored)]."""
    import shutil

    import cv2
    import numpy as np
    import torch
    from basicsr.metrics import calculate_psnr

    from basicsr_sgenet.inference.network import load_network, spec_from_option_file
    from basicsr_sgenet.inference.runtime import ImageRestorer, prepare_network
    from basicsr_sgenet.tools.plotting import comparison_panel, most_blurred_window

    spec = spec_from_option_file(option_file)
    spec.weights, spec.param_key = weights, None
    network = load_network(spec)
    restorer = ImageRestorer(prepare_network(network, torch.device('cpu')), torch.device('cpu'))
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    scores = []
    for key, blurred, sharp in frames:
        restored = np.round(np.clip(restorer.restore(blurred.astype(np.float32) / 255), 0, 1) * 255).astype(np.uint8)
        psnr_blurred, psnr_restored = (calculate_psnr(image, sharp, crop_border=0) for image in (blurred, restored))
        height, width = blurred.shape[0] // 3, blurred.shape[1] // 3
        window = (*most_blurred_window(blurred, sharp, height, width), height, width)
        panel = comparison_panel([blurred, restored, sharp],
                                 [f'blurred {psnr_blurred:.2f} dB', f'restored {psnr_restored:.2f} dB', 'sharp'],
                                 zoom_window=window, zoom=3)
        cv2.imwrite(os.path.join(out_dir, f'{key}.png'), panel)
        scores.append((key, psnr_blurred, psnr_restored))
    return scores


def run_demo(args):
    from basicsr.metrics import calculate_psnr

    from basicsr_sgenet.data.preparation import SubimageGrid
    from basicsr_sgenet.data.synthetic_gopro import build_synthetic_gopro
    from basicsr_sgenet.integration.errors import PreparationError
    from basicsr_sgenet.integration.options import write_option_file

    started = time.time()
    minutes = args.minutes or (0.4 if args.quick else 5.0)
    workspace = os.path.abspath(args.workspace)
    tree_root = os.path.join(workspace, 'GOPRO_demo')
    dataset_root = os.path.join(workspace, 'datasets', 'GoPro')
    data = QUICK_DATA if args.quick else DATA

    print(f'[1/4] Synthesising camera-shake blur into {tree_root} and preparing LMDBs in {dataset_root}', flush=True)
    try:
        grid = SubimageGrid(*SUBIMAGES['quick' if args.quick else 'full'])
        build_synthetic_gopro(tree_root, dataset_root, data, grid, seed=args.seed, workers=min(2, os.cpu_count() or 1),
                              log=lambda *_: None)
    except PreparationError as err:
        raise DemoError(str(err)) from None

    opt = training_options(dataset_root, args.quick)
    # Not in the calibration: starting the trainer's Python (imports) and, at the end,
    # restoring and writing the held-out frames.
    unmeasured_seconds = 10
    train_seconds = minutes * 60 - (time.time() - started) - unmeasured_seconds
    if args.iters:
        print(f'[2/4] Training {args.iters} iterations (--iters)', flush=True)
    else:
        print(f'[2/4] Timing a few training steps to fit {format_clock(max(train_seconds, 0))} of training', flush=True)
    timing = fit_budget(opt, train_seconds, args.iters, args.quick)
    iters = opt['train']['total_iter']
    if timing is not None:
        print(f'      {timing.seconds_per_iter:.3f} s per iteration on this machine: {iters} iterations', flush=True)
    option_file = os.path.join(workspace, 'options', 'train_SGENet_demo.yml')
    write_option_file(option_file, opt, OPTIONS_HEADER.format(iters=opt['train']['total_iter']))

    frames = held_out_frames(tree_root)
    blurred_psnr = sum(calculate_psnr(blurred, sharp, crop_border=0) for _, blurred, sharp in frames) / len(frames)
    print(f'[3/4] Training a {"tiny" if args.quick else "reduced"} SGENet through BasicSR\'s trainer '
          f'(python -m basicsr_sgenet.train -opt {os.path.relpath(option_file, workspace)}, in {workspace})',
          flush=True)
    training_seconds = train(workspace, option_file, iters, blurred_psnr,
                             timing.seconds_per_iter if timing is not None else 0.0)

    print('[4/4] Restoring the held-out frames', flush=True)
    weights = os.path.join(workspace, 'experiments', EXPERIMENT, 'models', 'net_g_latest.pth')
    if not os.path.isfile(weights):
        raise DemoError(f'training finished but {weights} is missing.')
    side_by_side = os.path.join(workspace, 'results', 'side_by_side')
    scores = restore_held_out(option_file, weights, frames, side_by_side)
    return dict(workspace=workspace, tree=tree_root, datasets=dataset_root, options=option_file, weights=weights,
                side_by_side=side_by_side, scores=scores, iters=iters, training_seconds=training_seconds,
                seconds=time.time() - started, budget_seconds=minutes * 60, timed=timing is not None,
                photos=data.test_photos)


def print_summary(summary):
    scores = summary['scores']
    mean_blurred = sum(score[1] for score in scores) / len(scores)
    mean_restored = sum(score[2] for score in scores) / len(scores)
    budget = f' (budget {format_clock(summary["budget_seconds"])})' if summary['timed'] else ''
    lines = [
        '',
        f'Demo finished in {format_clock(summary["seconds"])}{budget}; training {summary["iters"]} iterations took '
        f'{format_clock(summary["training_seconds"])}.',
        f'  synthetic GoPro tree   {summary["tree"]}',
        f'  LMDBs                  {summary["datasets"]}',
        f'  option file            {summary["options"]}',
        f'  training run           {os.path.dirname(os.path.dirname(summary["weights"]))}',
        f'  TensorBoard            tensorboard --logdir {os.path.join(summary["workspace"], "tb_logger")}',
        f'  side-by-side images    {summary["side_by_side"]}  (blurred | restored | sharp; below: 3x zoom)',
        f'Held-out photo ({", ".join(summary["photos"])}), never seen in training, PSNR of each frame:',
    ]
    for key, blurred, restored in scores:
        lines.append(f'  {key:18s} blurred {blurred:6.2f} dB -> restored {restored:6.2f} dB '
                     f'({restored - blurred:+.2f} dB)')
    lines.append(f'  {"mean":18s} blurred {mean_blurred:6.2f} dB -> restored {mean_restored:6.2f} dB '
                 f'({mean_restored - mean_blurred:+.2f} dB)')
    lines.append('The paper-size SGENet (19.3M parameters) trains 396,000 iterations on GPUs: '
                 'options/train_SGENet_GoPro.yml.')
    print('\n'.join(lines), flush=True)


def main(argv=None):
    args = parse_args(argv)
    summary = exit_on_user_error(run_demo, args)
    print_summary(summary)
    return summary


if __name__ == '__main__':
    main()
