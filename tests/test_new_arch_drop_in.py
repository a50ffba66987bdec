"""A new arch is one file: dropped into archs/ of a copy of the package, with no other file
edited, it trains through BasicSR's trainer, deblurs, exports to ONNX and is benchmarked.
(What docs/architecture.md, "Adding an arch", promises.)"""
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
from conftest import REPO_ROOT, python_env
from tiny_experiment import training_options, write_options, write_pairs

TOY_ARCH = '''\
"""A toy deblurring arch, as a user would write one: registered, any size, residual."""
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class ToyDeblur(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))

    def forward(self, image):
        return image + self.body(image)
'''


def run(args, cwd, package_root, timeout=300):
    result = subprocess.run([sys.executable] + args, cwd=cwd, env=python_env(PYTHONPATH=str(package_root)),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f'{args}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}'
    return result


def test_an_arch_dropped_into_archs_trains_deblurs_exports_and_benchmarks(tmp_path):
    package_root = tmp_path / 'checkout'
    shutil.copytree(os.path.join(REPO_ROOT, 'basicsr_sgenet'), package_root / 'basicsr_sgenet',
                    ignore=shutil.ignore_patterns('__pycache__'))
    (package_root / 'basicsr_sgenet' / 'archs' / 'toy_arch.py').write_text(TOY_ARCH)
    work = tmp_path / 'work'
    work.mkdir()

    # Train: BasicSR's trainer through the plugin's entry point, 2 iterations, plain L1.
    write_pairs(tmp_path / 'pairs', count=2, size=32)
    opt = training_options(tmp_path / 'pairs', 'toy', total_iter=2, checkpoint_every=2, gt_size=16,
                           network_g={'type': 'ToyDeblur'})
    opt['model_type'] = 'DeblurModel'
    opt['train']['pixel_opt'] = {'type': 'L1Loss', 'loss_weight': 1.0}
    run(['-m', 'basicsr_sgenet.train', '-opt', str(write_options(tmp_path / 'toy.yml', opt))], work, package_root)
    weights = work / 'experiments' / 'toy' / 'models' / 'net_g_2.pth'
    assert weights.is_file()

    # Deblur with the trained weights.
    cv2.imwrite(str(tmp_path / 'photo.png'), np.random.default_rng(0).integers(0, 256, (21, 30, 3), np.uint8))
    run(['-m', 'basicsr_sgenet.deblur', '--arch', 'ToyDeblur', '--weights', str(weights), '-i',
         str(tmp_path / 'photo.png'), '-o', str(tmp_path / 'restored'), '--quiet'], work, package_root)
    assert cv2.imread(str(tmp_path / 'restored' / 'photo.png')).shape == (21, 30, 3)

    # Export to ONNX (checked against PyTorch by the command itself).
    run(['-m', 'basicsr_sgenet.export', '--arch', 'ToyDeblur', '--weights', str(weights), '-o',
         str(tmp_path / 'toy.onnx')], work, package_root)
    assert (tmp_path / 'toy.onnx').stat().st_size > 0

    # Benchmark: params, MACs and latency.
    run(['-c', 'import sys; from basicsr_sgenet.tools.benchmark import main; sys.exit(main(sys.argv[1:]))',
         '--model', 'ToyDeblur', '--sizes', '16x16', '--warmup', '0', '--repeats', '1',
         '--out', str(tmp_path / 'bench.md')], work, package_root)
    assert 'ToyDeblur' in (tmp_path / 'bench.md').read_text()
