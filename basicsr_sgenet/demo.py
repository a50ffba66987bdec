"""One-command demo: synthetic GoPro-style data, LMDB preparation, a short CPU training
run through BasicSR's trainer, and side-by-side results. Nothing is downloaded: the
photos are the ones bundled with scikit-image.

    python scripts/demo.py                     # about 5 minutes on a 2-core CPU
    python scripts/demo.py --quick             # about 30 seconds, a smoke test
    python -m basicsr_sgenet.demo --workspace /tmp/sgenet_demo --iters 300

Everything goes into the workspace (default ``demo_workspace/``)::

    GOPRO_demo/{train,test}/<photo>/{blur,blur_gamma,sharp}/*.png   GoPro's layout
    datasets/GoPro/{train,test}/{blur,sharp}.lmdb                   scripts/prepare_gopro.py's output
    options/train_SGENet_demo.yml                                   the option file trained with
    experiments/SGENet_demo/   tb_logger/SGENet_demo/               BasicSR's run folders
    results/side_by_side/<key>.png                                  blurred | restored | sharp
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

if __name__ == '__main__' and not __package__:
    # Run as a file: put the repository root on sys.path instead of this package's folder.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from basicsr_sgenet.data.preparation import SubimageGrid, prepare_gopro  # noqa: E402
from basicsr_sgenet.data.synthetic_blur import ShakeSettings, synthesize_pair  # noqa: E402
from basicsr_sgenet.errors import PreparationError  # noqa: E402

EXPERIMENT_NAME = 'SGENet_demo'
TREE_MARKER = '.made_by_sgenet_demo'
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DemoError(RuntimeError):
    """A demo stage that failed; the message says which and where to look."""


def load_photo(name):
    """A colour photo bundled with scikit-image, as RGB uint8."""
    from skimage import data
    if name == 'motorcycle':
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo. Training photos and test photos differ, so the scores are on
    content the network has not seen."""
    train_photos: tuple = ('astronaut', 'coffee', 'rocket', 'motorcycle')
    test_photos: tuple = ('chelsea',)
    train_frames_per_photo: int = 6
    test_frames_per_photo: int = 3
    train_frame_size: tuple = (192, 256)  # height, width
    test_frame_size: tuple = (240, 320)
    grid: SubimageGrid = field(default_factory=lambda: SubimageGrid(128, 64))  # step = crop - gt_size
    gt_size: int = 64
    batch_size: int = 4
    iters: int = 1000
    lr: float = 5e-4                       # higher than the paper's 2e-4: the run is 400x shorter
    warmup_iters: int = 100                # a gentle start: a too-large first step can kill ReLUs for good
    channels: tuple = (32, 40, 48)         # paper: 96, 120, 144
    num_rdm: int = 1                       # paper: 2
    shake: ShakeSettings = ShakeSettings(max_extent=8.0)  # visible blur: frames are ~1/5 of GoPro's width


QUICK = DemoSettings(train_photos=('astronaut', 'coffee'), train_frames_per_photo=2, test_frames_per_photo=2,
                     train_frame_size=(96, 128), test_frame_size=(96, 128), grid=SubimageGrid(64, 32), gt_size=32,
                     batch_size=2, iters=20, channels=(16, 20, 24))


# ----------------------------------------------------------------------------- data


def synthesize_gopro_tree(root, settings, seed):
    """Write a GoPro-layout tree of synthetic blur (replacing an earlier demo tree)."""
    if os.path.exists(root):
        if not os.path.isfile(os.path.join(root, TREE_MARKER)):
            raise DemoError(f'{root} exists and was not made by the demo; choose another --workspace.')
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    for split, photos, frames, (height, width) in (
            ('train', settings.train_photos, settings.train_frames_per_photo, settings.train_frame_size),
            ('test', settings.test_photos, settings.test_frames_per_photo, settings.test_frame_size)):
        for photo_name in photos:
            photo = load_photo(photo_name)
            for frame in range(1, frames + 1):
                images = dict(zip(('sharp', 'blur', 'blur_gamma'),
                                  synthesize_pair(photo, rng, height, width, settings.shake)))
                for folder, image in images.items():
                    path = os.path.join(root, split, photo_name, folder, f'{frame:06d}.png')
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    open(os.path.join(root, TREE_MARKER), 'w').close()


# ----------------------------------------------------------------------------- training


def training_options(settings, dataset_root):
    """The demo's option file: options/train_SGENet_GoPro.yml scaled down (see the header
    written with it)."""
    iters = settings.iters
    return {
        'name': EXPERIMENT_NAME,
        'model_type': 'DeblurModel',
        'scale': 1,
        'num_gpu': 'auto',
        'manual_seed': 10,
        'datasets': {
            'train': {
                'name': 'GoPro_demo_train', 'type': 'PairedFlipDataset',
                'dataroot_gt': f'{dataset_root}/train/sharp.lmdb', 'dataroot_lq': f'{dataset_root}/train/blur.lmdb',
                'io_backend': {'type': 'lmdb'}, 'gt_size': settings.gt_size, 'use_hflip': True, 'use_vflip': True,
                'num_worker_per_gpu': 0, 'batch_size_per_gpu': settings.batch_size, 'dataset_enlarge_ratio': 1,
                'prefetch_mode': None,
            },
            'val': {
                'name': 'GoPro_demo_test', 'type': 'PairedFlipDataset',
                'dataroot_gt': f'{dataset_root}/test/sharp.lmdb', 'dataroot_lq': f'{dataset_root}/test/blur.lmdb',
                'io_backend': {'type': 'lmdb'},
            },
        },
        'network_g': {'type': 'SGENet', 'channels': list(settings.channels), 'num_rdm': settings.num_rdm},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': settings.lr, 'weight_decay': 0, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [iters], 'restart_weights': [1],
                          'eta_min': 1e-7},
            'total_iter': iters,
            'warmup_iter': settings.warmup_iters if settings.warmup_iters < iters else -1,
            'pixel_opt': {'type': 'MultiScaleCharbonnierEdgeLoss', 'loss_weight': 1.0, 'edge_weight': 0.05,
                          'eps': 1e-3},
        },
        'val': {
            'val_freq': max(1, iters // 4),
            'save_img': False,
            'metrics': {name: {'type': f'calculate_{name}', 'crop_border': 0, 'test_y_channel': False}
                        for name in ('psnr', 'ssim')},
        },
        'logger': {'print_freq': max(1, iters // 20), 'save_checkpoint_freq': iters, 'use_tb_logger': True,
                   'wandb': {'project': None, 'resume_id': None}},
    }


OPTIONS_HEADER = """\
# Written by the SGENet demo (python scripts/demo.py). The paper's recipe is
# options/train_SGENet_GoPro.yml; this is the same pipeline scaled down to run on a CPU in
# minutes: a narrower, shallower SGENet, 64x64 crops instead of 256x256, a batch of 4
# instead of 16, a higher learning rate with a short warm-up, and {iters} iterations
# instead of 396,000.
# Train again with:  python -m basicsr_sgenet.train -opt options/train_SGENet_demo.yml
"""


def write_options(path, options):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(OPTIONS_HEADER.format(iters=options['train']['total_iter']))
        yaml.safe_dump(options, f, sort_keys=False)


def run_training(workspace, option_file, quiet):
    """``python -m basicsr_sgenet.train -opt <option_file>`` in the workspace, BasicSR's
    usual train command, so experiments/ and tb_logger/ land there."""
    command = [sys.executable, '-m', 'basicsr_sgenet.train', '-opt', option_file]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get('PYTHONPATH')]))
    print(f'$ cd {workspace} && python {" ".join(command[1:])}', flush=True)
    result = subprocess.run(command, cwd=workspace, env=env, text=True,
                            capture_output=quiet)
    if result.returncode != 0:
        detail = f'\n{result.stderr[-3000:]}' if quiet else ''
        raise DemoError(f'training failed (exit code {result.returncode}); see the log in '
                        f'{os.path.join(workspace, "experiments", EXPERIMENT_NAME)}{detail}')


# ----------------------------------------------------------------------------- results


def load_trained_network(workspace, settings):
    import torch
    from basicsr.utils.registry import ARCH_REGISTRY

    weights = os.path.join(workspace, 'experiments', EXPERIMENT_NAME, 'models', 'net_g_latest.pth')
    if not os.path.isfile(weights):
        raise DemoError(f'training finished but {weights} is missing.')
    network = ARCH_REGISTRY.get('SGENet')(channels=list(settings.channels), num_rdm=settings.num_rdm)
    network.load_state_dict(torch.load(weights, map_location='cpu', weights_only=True)['params'])
    return network.eval(), weights


def restore(network, blurred_rgb):
    import torch
    with torch.no_grad():
        batch = torch.from_numpy(blurred_rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
        restored = network(batch).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return np.round(restored * 255).astype(np.uint8)


def side_by_side(panels, captions):
    """Images in a row with a caption bar above each, separated by white gaps (BGR out)."""
    gap, bar = 6, 24
    height = panels[0].shape[0]
    columns = []
    for image, caption in zip(panels, captions):
        header = np.full((bar, image.shape[1], 3), 255, np.uint8)
        cv2.putText(header, caption, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        columns += [np.vstack([header, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)]),
                    np.full((height + bar, gap, 3), 255, np.uint8)]
    return np.hstack(columns[:-1])


def evaluate_test_frames(network, tree_root, out_dir):
    """Restore every test frame; write side-by-sides; return [(key, psnr_blur, psnr_out)]."""
    from basicsr.metrics import calculate_psnr

    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    scores = []
    test_root = os.path.join(tree_root, 'test')
    for sequence in sorted(os.listdir(test_root)):
        for name in sorted(os.listdir(os.path.join(test_root, sequence, 'sharp'))):
            read = lambda folder: cv2.cvtColor(cv2.imread(os.path.join(test_root, sequence, folder, name)),  # noqa
                                               cv2.COLOR_BGR2RGB)
            blurred, sharp = read('blur'), read('sharp')
            restored = restore(network, blurred)
            psnr_blur, psnr_out = (calculate_psnr(image, sharp, crop_border=0) for image in (blurred, restored))
            key = f'{sequence}_{os.path.splitext(name)[0]}'
            cv2.imwrite(os.path.join(out_dir, f'{key}.png'), side_by_side(
                [blurred, restored, sharp], [f'blurred {psnr_blur:.2f} dB', f'SGENet demo {psnr_out:.2f} dB',
                                             'sharp']))
            scores.append((key, psnr_blur, psnr_out))
    return scores


# ----------------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description='SGENet demo: synthetic GoPro-style data, LMDBs, a short CPU '
                                     'training run and side-by-side results.')
    parser.add_argument('--workspace', default='demo_workspace', help='where everything is written')
    parser.add_argument('--iters', type=int, help='training iterations (default 1000; 20 with --quick)')
    parser.add_argument('--quick', action='store_true', help='tiny data and 20 iterations: a ~30 s smoke test')
    parser.add_argument('--seed', type=int, default=0, help='seed of the synthetic blur')
    parser.add_argument('--quiet', action='store_true', help="hide the trainer's output unless it fails")
    return parser.parse_args(argv)


def run_demo(workspace, settings, seed=0, quiet=False):
    """All stages; returns a dict of where things are and the PSNR scores."""
    started = time.time()
    workspace = os.path.abspath(workspace)
    tree_root = os.path.join(workspace, 'GOPRO_demo')
    dataset_root = os.path.join('datasets', 'GoPro')  # relative: the option file is used from the workspace
    option_file = os.path.join('options', 'train_SGENet_demo.yml')

    print(f'[1/4] Synthesising camera-shake blur into {tree_root}', flush=True)
    synthesize_gopro_tree(tree_root, settings, seed)

    print(f'[2/4] Preparing LMDBs in {os.path.join(workspace, dataset_root)} (scripts/prepare_gopro.py\'s code)',
          flush=True)
    # The demo owns its datasets and rebuilds them: its tree changes with --quick and --seed.
    prepare_gopro(tree_root, os.path.join(workspace, dataset_root), grid=settings.grid,
                  workers=min(2, os.cpu_count() or 1), overwrite=True, progress=False)

    print(f'[3/4] Training a reduced SGENet for {settings.iters} iterations', flush=True)
    write_options(os.path.join(workspace, option_file), training_options(settings, dataset_root))
    run_training(workspace, option_file, quiet)

    print('[4/4] Restoring the test frames', flush=True)
    network, weights = load_trained_network(workspace, settings)
    side_by_side_dir = os.path.join(workspace, 'results', 'side_by_side')
    scores = evaluate_test_frames(network, tree_root, side_by_side_dir)
    return {'workspace': workspace, 'tree': tree_root, 'datasets': os.path.join(workspace, dataset_root),
            'options': os.path.join(workspace, option_file), 'weights': weights,
            'experiment': os.path.join(workspace, 'experiments', EXPERIMENT_NAME),
            'tensorboard': os.path.join(workspace, 'tb_logger', EXPERIMENT_NAME), 'side_by_side': side_by_side_dir,
            'scores': scores, 'seconds': time.time() - started}


def print_summary(summary):
    scores = summary['scores']
    mean_blur = float(np.mean([blur for _, blur, _ in scores]))
    mean_out = float(np.mean([out for _, _, out in scores]))
    print(f"""
Demo finished in {summary['seconds']:.0f} s.
  synthetic GoPro tree   {summary['tree']}
  LMDBs                  {summary['datasets']}
  option file            {summary['options']}
  training run           {summary['experiment']}  (log, weights {os.path.basename(summary['weights'])})
  TensorBoard            tensorboard --logdir {os.path.dirname(summary['tensorboard'])}
  side-by-side images    {summary['side_by_side']}  (blurred | restored | sharp)
PSNR on {len(scores)} unseen test frames: blurred {mean_blur:.2f} dB -> restored {mean_out:.2f} dB \
({mean_out - mean_blur:+.2f} dB)
A few CPU minutes with a 1.3M-parameter SGENet only check the pipeline: expect a gain of a few
tenths of a dB at most. The paper's model (19.3M parameters) trains 396,000 iterations on GPUs:
options/train_SGENet_GoPro.yml.""")


def main(argv=None):
    args = parse_args(argv)
    settings = QUICK if args.quick else DemoSettings()
    if args.iters is not None:
        if args.iters < 1:
            sys.exit(f'error: --iters must be at least 1, got {args.iters}.')
        settings = DemoSettings(**{**vars(settings), 'iters': args.iters})
    try:
        summary = run_demo(args.workspace, settings, args.seed, args.quiet)
    except (DemoError, PreparationError) as err:
        sys.exit(f'error: {err}')
    print_summary(summary)
    return summary


if __name__ == '__main__':
    main()
