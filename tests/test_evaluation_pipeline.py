"""Evaluation as users run it: ``basicsr_sgenet.test`` hands over to BasicSR's test
pipeline, which scores every image with BasicSR's, the MATLAB-protocol and the RealBlur
metrics and saves the restored images under ./results."""
import re

import torch

from basicsr.archs import build_network

from conftest import run_python
from tiny_experiment import TINY_SGENET, write_options, write_pairs


def test_test_pipeline_scores_the_whole_set_and_saves_outputs(tmp_path):
    sharp_dir, blur_dir = write_pairs(tmp_path / 'data', count=3, size=36)
    torch.save({'params': build_network(dict(TINY_SGENET)).state_dict()}, tmp_path / 'weights.pth')
    metrics = {name: {'type': metric, 'crop_border': 0}
               for name, metric in [('psnr', 'calculate_psnr'), ('ssim', 'calculate_ssim'),
                                    ('psnr_matlab', 'calculate_psnr_matlab'), ('ssim_matlab', 'calculate_ssim_matlab'),
                                    ('psnr_realblur', 'psnr_realblur'), ('ssim_realblur', 'ssim_realblur')]}
    opt = {
        'name': 'tiny_test', 'model_type': 'SGENetModel', 'scale': 1, 'num_gpu': 'auto', 'manual_seed': 0,
        'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(sharp_dir),
                                'dataroot_lq': str(blur_dir), 'io_backend': {'type': 'disk'}}},
        'network_g': dict(TINY_SGENET),
        'path': {'pretrain_network_g': str(tmp_path / 'weights.pth'), 'param_key_g': 'params',
                 'strict_load_g': True},
        'val': {'save_img': True, 'suffix': None, 'metrics': metrics},
    }
    yml = write_options(tmp_path / 'test.yml', opt)
    result = run_python(['-m', 'basicsr_sgenet.test', '-opt', str(yml)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    run_dir = tmp_path / 'results' / 'tiny_test'
    log = next(run_dir.glob('test_tiny_test_*.log')).read_text()
    scores = dict(re.findall(r'# (\w+): ([\d.]+)', log))
    assert set(scores) == set(metrics), log[-2000:]
    assert 0 < float(scores['ssim']) <= 1 and 0 < float(scores['ssim_matlab']) <= 1
    assert 0 < float(scores['ssim_realblur']) <= 1 and float(scores['psnr_realblur']) > 0
    # PSNR is the same quantity in both protocols (8-bit RGB, whole image).
    assert abs(float(scores['psnr']) - float(scores['psnr_matlab'])) < 1e-3
    saved = sorted(p.name for p in (run_dir / 'visualization' / 'tiny').glob('*.png'))
    assert saved == [f'{index:04d}_tiny_test.png' for index in range(3)]
