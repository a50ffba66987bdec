"""A tiny paired image set and BasicSR option file for end-to-end training tests.

Pairs are smooth random colour images (sharp) and their box-blurred copies (blur), so a
few iterations of a tiny SGENet measurably learn something.
"""
import cv2
import numpy as np
import yaml

TINY_SGENET = {'type': 'SGENet', 'channels': [8, 12, 16], 'num_rdm': 1}


def write_pairs(root, count=4, size=48, seed=0):
    """Write ``count`` sharp/blur PNG pairs under ``root/{sharp,blur}``; returns both dirs."""
    rng = np.random.default_rng(seed)
    sharp_dir, blur_dir = root / 'sharp', root / 'blur'
    sharp_dir.mkdir(parents=True, exist_ok=True)
    blur_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        coarse = rng.uniform(0, 255, size=(size // 8, size // 8, 3)).astype(np.float32)
        sharp = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
        blur = cv2.blur(sharp, (7, 7))
        cv2.imwrite(str(sharp_dir / f'{index:04d}.png'), sharp)
        cv2.imwrite(str(blur_dir / f'{index:04d}.png'), blur)
    return sharp_dir, blur_dir


def training_options(data_root, name, total_iter=20, checkpoint_every=10, validate=True, gt_size=32,
                     batch_size_per_gpu=2, network_g=None):
    """A complete training option dict for BasicSR's trainer on the pairs in ``data_root``."""
    sharp_dir, blur_dir = data_root / 'sharp', data_root / 'blur'
    opt = {
        'name': name,
        'model_type': 'SGENetModel',
        'num_gpu': 'auto',
        'manual_seed': 0,
        'datasets': {
            'train': {
                'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(sharp_dir),
                'dataroot_lq': str(blur_dir), 'io_backend': {'type': 'disk'}, 'gt_size': gt_size,
                'use_hflip': True, 'use_rot': False, 'scale': 1, 'batch_size_per_gpu': batch_size_per_gpu,
                'num_worker_per_gpu': 0, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None,
            },
        },
        'network_g': dict(network_g or TINY_SGENET),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.999]},
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [total_iter], 'restart_weights': [1],
                          'eta_min': 1e-7},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'MultiScaleCharbonnierEdgeLoss', 'loss_weight': 1.0},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': checkpoint_every, 'use_tb_logger': True,
                   'wandb': {'project': None}},
    }
    if validate:
        opt['datasets']['val'] = {
            'name': 'tiny_val', 'type': 'PairedImageDataset', 'dataroot_gt': str(sharp_dir),
            'dataroot_lq': str(blur_dir), 'io_backend': {'type': 'disk'}, 'scale': 1,
        }
        opt['val'] = {'val_freq': checkpoint_every, 'save_img': False,
                      'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}}
    return opt


def write_options(path, opt):
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path
