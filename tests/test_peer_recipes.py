"""Every shipped training recipe (SGENet and its peers) runs through BasicSR's trainer
from its own option file, shrunk to a tiny width and dataset; and the peers' losses,
optimizers and schedules do what their authors' code does."""
import math
import os
import re

import pytest
import torch
import torch.nn.functional as F

from basicsr_sgenet.integration.pipeline import run_pipeline
from basicsr_sgenet.losses.mimounet_loss import MultiScaleL1FFTLoss
from basicsr_sgenet.losses.mlwnet_loss import MultiScalePSNRWaveletLoss
from basicsr_sgenet.losses.sgenet_loss import MultiScaleCharbonnierEdgeLoss
from basicsr_sgenet.losses.psnr_loss import PSNRLoss
from basicsr_sgenet.models.lr_scheduler import CosineAnnealingRestartCyclicLR
from basicsr_sgenet.models.progressive_patches import ProgressivePatches
from basicsr_sgenet.integration.options import load_options, write_option_file
from conftest import REPO_ROOT
from random_vgg19 import write_random_vgg19
from tiny_experiment import write_pairs

TINY_NETWORKS = {
    'SGENet': {'channels': [8, 12, 16], 'num_rdm': 1},
    'MPRNet': {'n_feat': 16, 'scale_unetfeats': 8, 'scale_orsnetfeats': 8, 'num_cab': 1},
    'MIMOUNet': {'base_channel': 4, 'num_res': 1},
    'MIMOUNetPlus': {'base_channel': 4, 'num_res': 1},
    'NAFNet': {'width': 8, 'enc_blk_nums': [1, 1], 'middle_blk_num': 1, 'dec_blk_nums': [1, 1],
               'tlc_train_size': 32},
    'Restormer': {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 1, 1, 1]},
    'MLWNet': {'dim': 4, 'encoder_blocks': [1, 1, 1, 1], 'fusion_blocks': [1, 1], 'decoder_blocks': [1, 1, 1, 1],
               'tlc_train_size': 32},
    'FFTformer': {'dim': 4, 'num_blocks': [1, 1, 1], 'num_refinement_blocks': 1},
    'Stripformer': {'widths': [8, 8, 16], 'decoder_width': 8, 'heads': 2, 'decoder_heads': 2, 'num_blocks': 2,
                    'decoder_blocks': 2},
}


def tiny_run(recipe, data_root, name):
    """The recipe's options on the tiny pairs: same model, loss, optimizer and schedule
    kind, 2 iterations, a tiny network, 24-pixel crops, batch 2, validation once."""
    opt = load_options(os.path.join(REPO_ROOT, 'options', f'train_{recipe}_GoPro.yml'))
    network = {'type': opt['network_g']['type'], **TINY_NETWORKS[recipe]}
    folders = {'dataroot_gt': str(data_root / 'sharp'), 'dataroot_lq': str(data_root / 'blur'),
               'io_backend': {'type': 'disk'}}
    opt['datasets']['train'].update(folders, gt_size=24, total_batch_size=2, num_worker_per_gpu=0)
    opt['datasets']['val'].update(folders)
    train = opt['train']
    scheduler = train['scheduler']
    if 'periods' in scheduler:
        scheduler['periods'] = [2] * len(scheduler['periods'])
    if 'milestones' in scheduler:
        scheduler['milestones'] = [1]
    if 'progressive' in train:
        train['progressive'] = {'iters': [1, 1], 'gt_sizes': [16, 24], 'mini_batch_sizes': [1, 2]}
    train.update(total_iter=2, warmup_iter=1 if train.get('warmup_iter', -1) > 0 else -1)
    opt.update(name=name, network_g=network, num_gpu=0)
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2)
    opt['datasets']['train'].pop('batch_size_per_gpu', None)
    if (train.get('pixel_opt') or {}).get('vgg19_weights'):  # Stripformer's contrastive term
        train['pixel_opt']['vgg19_weights'] = str(write_random_vgg19(data_root / 'vgg19.pth'))
    return opt


@pytest.mark.parametrize('recipe', list(TINY_NETWORKS))
def test_recipe_trains_through_basicsrs_trainer(tmp_path, monkeypatch, recipe, fresh_basicsr_logger):
    write_pairs(tmp_path / 'data', count=2, size=32)
    yml = write_option_file(tmp_path / f"{recipe}.yml", tiny_run(recipe, tmp_path / "data", recipe))
    monkeypatch.chdir(tmp_path)
    run_pipeline('train', ['-opt', str(yml)])
    experiment = tmp_path / 'experiments' / recipe
    assert (experiment / 'models' / 'net_g_latest.pth').exists()
    log = next(experiment.glob('train_*.log')).read_text()
    assert re.search(r'iter:\s+2,', log) and '# psnr_matlab:' in log
    assert 'l_total: ' in log
    if recipe == 'MLWNet':  # every output and the wavelet regulariser are trained
        assert all(f'l_pix_{key}: ' in log for key in ('final', 'scale2', 'scale3', 'scale4', 'wavelet'))
    if recipe == 'Stripformer':  # the contrastive term ran, with the blurred input DeblurModel passes
        assert re.search(r'l_pix_contrastive: \d', log) and 'l_pix_final: ' in log


def test_multiscale_l1_fft_loss_is_mimo_unets():
    torch.manual_seed(0)
    gt = torch.rand(2, 3, 16, 16)
    outputs = {'final': torch.rand(2, 3, 16, 16), 'scale2': torch.rand(2, 3, 8, 8), 'scale3': torch.rand(2, 3, 4, 4)}
    expected = 0
    for key, factor in (('final', 1), ('scale2', 2), ('scale3', 4)):
        # The authors: one bilinear resize of the full ground truth per scale, and
        # torch.rfft(signal_ndim=2, onesided=False): real and imaginary parts, unnormalised.
        target = gt if factor == 1 else F.interpolate(gt, scale_factor=1 / factor, mode='bilinear')
        spectrum = lambda x: torch.stack([torch.fft.fft2(x).real, torch.fft.fft2(x).imag], dim=-1)  # noqa: E731
        expected = expected + F.l1_loss(outputs[key], target) + 0.1 * F.l1_loss(spectrum(outputs[key]),
                                                                                 spectrum(target))
    torch.testing.assert_close(MultiScaleL1FFTLoss()(outputs, gt), expected)
    assert set(MultiScaleL1FFTLoss().terms(outputs, gt)) == {'final', 'scale2', 'scale3'}


def test_fftformer_recipe_and_loss_are_the_authors():
    opt = load_options(os.path.join(REPO_ROOT, 'options', 'train_FFTformer_GoPro.yml'))
    train, train_set = opt['train'], opt['datasets']['train']
    assert (train_set['gt_size'], train_set['total_batch_size'], opt['manual_seed']) == (128, 64, 42)
    assert train['optim_g'] == {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 1e-3, 'betas': [0.9, 0.9]}
    assert train['scheduler']['periods'] == [train['total_iter']] == [300000]
    assert train['scheduler']['eta_min'] == 1e-7 and train['grad_clip_norm'] == 0.01
    assert opt['find_unused_parameters'] is True  # the official, unused reduce_chan_level2
    pixel_opt = dict(train['pixel_opt'])
    assert pixel_opt.pop('type') == 'MultiScaleL1FFTLoss'
    loss = MultiScaleL1FFTLoss(**pixel_opt)
    # The authors: L1Loss (weight 1) + FFTLoss (weight 0.1), the L1 between the real and
    # imaginary parts of torch.fft.fft2 of the restored and sharp images, stacked.
    torch.manual_seed(0)
    pred, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    spectrum = lambda x: torch.stack([torch.fft.fft2(x).real, torch.fft.fft2(x).imag], dim=-1)  # noqa: E731
    expected = F.l1_loss(pred, gt) + 0.1 * F.l1_loss(spectrum(pred), spectrum(gt))
    torch.testing.assert_close(loss(pred, gt), expected)
    assert list(loss.terms(pred, gt)) == ['final']


def test_psnr_loss_is_minus_the_mean_psnr():
    gt = torch.zeros(2, 3, 4, 4)
    pred = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])
    psnrs = [20.0, 40.0]  # 10 log10(1 / mse) for mse 1e-2 and 1e-4
    torch.testing.assert_close(PSNRLoss()(pred, gt), torch.tensor(-sum(psnrs) / 2), atol=1e-3, rtol=0)  # + 1e-8 inside
    torch.testing.assert_close(PSNRLoss()({'final': pred}, gt), PSNRLoss()(pred, gt))


def _mlwnet_outputs(seed=0):
    generator = torch.Generator().manual_seed(seed)
    outputs = {key: torch.rand(2, 3, 32 // f, 32 // f, generator=generator)
               for key, f in (('final', 1), ('scale2', 2), ('scale3', 4), ('scale4', 8))}
    outputs['wavelet'] = torch.tensor(0.25)
    return outputs, torch.rand(2, 3, 32, 32, generator=generator)


def test_multiscale_psnr_wavelet_loss_is_mlwnets():
    outputs, gt = _mlwnet_outputs()
    expected = 0.25  # the wavelet term, weight 1
    for key, factor in (('final', 1), ('scale2', 2), ('scale3', 4), ('scale4', 8)):
        # The authors' SRN_loss: 10/ln10 * mean_n ln(MSE_n + 1e-8), weights 1, 1/2, 1/4, 1/8,
        # against the area-resized ground truth (2x2, 4x4, 8x8 block means here).
        target = F.avg_pool2d(gt, factor)
        mse = ((outputs[key] - target)**2).mean(dim=(1, 2, 3))
        expected = expected + (10 / math.log(10)) * torch.log(mse + 1e-8).mean() / factor
    torch.testing.assert_close(MultiScalePSNRWaveletLoss()(outputs, gt), expected)
    terms = MultiScalePSNRWaveletLoss(wavelet_weight=2.0).terms(outputs, gt)
    assert list(terms) == ['final', 'scale2', 'scale3', 'scale4', 'wavelet'] and terms['wavelet'].item() == 0.5
    torch.testing.assert_close(terms['final'], PSNRLoss()(outputs['final'], gt))
    no_wavelet = MultiScalePSNRWaveletLoss(wavelet_weight=0)(outputs, gt)
    torch.testing.assert_close(no_wavelet, expected - 0.25)


def test_mlwnet_loss_names_a_missing_wavelet_term_and_image_losses_skip_it():
    outputs, gt = _mlwnet_outputs()
    images = {key: value for key, value in outputs.items() if key != 'wavelet'}
    with pytest.raises(ValueError, match="no 'wavelet' term .* wavelet_weight: 0"):
        MultiScalePSNRWaveletLoss()(images, gt)
    # Image losses supervise MLWNet's four images and leave its scalar term alone.
    terms = MultiScaleCharbonnierEdgeLoss().terms(outputs, gt)
    assert list(terms) == ['final', 'scale2', 'scale3', 'scale4']
    torch.testing.assert_close(PSNRLoss()(outputs, gt), PSNRLoss()(outputs['final'], gt))
    with pytest.raises(ValueError, match='wavelet_weight'):
        MultiScalePSNRWaveletLoss(wavelet_weight=-1)


def test_cyclic_cosine_is_constant_then_decays_to_each_floor():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-4)
    scheduler = CosineAnnealingRestartCyclicLR(optimizer, periods=[4, 8], restart_weights=[1, 1],
                                               eta_mins=[3e-4, 1e-6])
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        scheduler.step()
    assert all(math.isclose(lr, 3e-4) for lr in lrs[:5])
    assert lrs[5] < 3e-4 and all(a > b for a, b in zip(lrs[5:], lrs[6:]))
    assert math.isclose(optimizer.param_groups[0]['lr'], 1e-6)


def test_progressive_patches_pick_the_stage_sub_batch_and_window():
    patches = ProgressivePatches(iters=[2, 3], gt_sizes=[8, 16], mini_batch_sizes=[4, 2])
    lq, gt = torch.rand(6, 3, 16, 16), torch.rand(6, 3, 16, 16)
    small_lq, small_gt = patches.select(lq, gt, current_iter=2)
    assert small_lq.shape == small_gt.shape == (4, 3, 8, 8)
    assert any(torch.equal(small_gt[0], gt[i, :, top:top + 8, left:left + 8])
               for i in range(6) for top in range(9) for left in range(9))
    assert [t.shape for t in patches.select(lq, gt, current_iter=3)] == [(2, 3, 16, 16)] * 2
    assert patches.stage(100) == 1


def _authors_layout(arch, state_dict):
    """A checkpoint laid out as each peer's authors save theirs."""
    if arch == 'MPRNet':  # {'epoch', 'state_dict', 'optimizer'}, trained under DataParallel
        return {'epoch': 3000, 'state_dict': {f'module.{key}': value for key, value in state_dict.items()},
                'optimizer': {}}
    if arch.startswith('MIMOUNet'):
        return {'model': state_dict}
    if arch in ('FFTformer', 'Stripformer'):  # bare state dicts (fftformer_GoPro.pth; torch.save(netG.state_dict()))
        return state_dict
    return {'params': state_dict}  # NAFNet, Restormer, MLWNet


PEERS = [arch for arch in TINY_NETWORKS if arch != 'SGENet']


@pytest.mark.parametrize('arch', PEERS)
def test_deblur_cli_restores_an_image_from_each_authors_checkpoint_layout(tmp_path, arch):
    import json

    import cv2
    import numpy as np
    from basicsr.utils.registry import ARCH_REGISTRY

    from basicsr_sgenet.deblur import main

    torch.manual_seed(0)
    network = ARCH_REGISTRY.get(arch)(**TINY_NETWORKS[arch])
    weights = tmp_path / 'weights.pth'
    torch.save(_authors_layout(arch, network.state_dict()), weights)
    image = (np.random.default_rng(0).random((37, 29, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'in.png'), image)
    status = main(['-i', str(tmp_path / 'in.png'), '-o', str(tmp_path / 'out'), '--weights', str(weights),
                   '--arch', arch, '--arch-args', json.dumps(TINY_NETWORKS[arch]), '--device', 'cpu', '--quiet'])
    assert status == 0
    restored = cv2.imread(str(tmp_path / 'out' / 'in.png'))
    assert restored.shape == image.shape


@pytest.mark.parametrize('arch', PEERS)
def test_test_pipeline_loads_each_authors_checkpoint_layout_and_names_a_wrong_one(tmp_path, arch):
    from basicsr.models.base_model import BaseModel
    from basicsr.utils.registry import ARCH_REGISTRY

    from basicsr_sgenet.integration.errors import CheckpointMismatchError

    class Model:  # what BaseModel.load_network uses of a model
        _print_different_keys_loading = BaseModel._print_different_keys_loading

        def get_bare_model(self, net):
            return net

    torch.manual_seed(0)
    trained = ARCH_REGISTRY.get(arch)(**TINY_NETWORKS[arch])
    torch.save(_authors_layout(arch, trained.state_dict()), tmp_path / 'official.pth')
    fresh = ARCH_REGISTRY.get(arch)(**TINY_NETWORKS[arch])
    BaseModel.load_network(Model(), fresh, str(tmp_path / 'official.pth'))  # path.pretrain_network_g, params key
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)

    other = 'SGENet' if arch != 'SGENet' else 'MPRNet'
    torch.save({'params': ARCH_REGISTRY.get(other)(**TINY_NETWORKS[other]).state_dict()}, tmp_path / 'other.pth')
    with pytest.raises(CheckpointMismatchError, match=r'does not fit the .* missing keys .* unexpected keys'):
        BaseModel.load_network(Model(), fresh, str(tmp_path / 'other.pth'))
