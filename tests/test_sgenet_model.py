"""SGENetModel: multi-output training, logging, EMA, mixed precision, non-finite loss,
validation through BasicSR's metrics, and a short run of BasicSR's own trainer."""
import copy
import math
import os
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, Dataset

from basicsr.metrics import calculate_psnr
from basicsr.models import build_model
from basicsr.utils import tensor2img
from basicsr.utils.registry import ARCH_REGISTRY
from basicsr_sgenet.integration.errors import NonFiniteLossError
from basicsr_sgenet.models.deblur_model import SGENetModel

from conftest import run_python
from tiny_experiment import TINY_SGENET, training_options, write_options, write_pairs

OUTPUT_FACTORS = {'final': 1, 'stage2_cem1': 1, 'stage2_cem2': 2, 'stage2_cem3': 4, 'sam': 1, 'stage1_cem1': 1,
                  'stage1_cem2': 2, 'stage1_cem3': 4}



class TinyMultiOutputNet(nn.Module):
    """Follows SGENet's output contract with a few convolutions: a dict of images at
    scales 1, 1/2, 1/4 in train mode, the final image in eval mode."""

    def __init__(self, width=8):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.tails = nn.ModuleDict({key: nn.Conv2d(width, 3, 3, padding=1) for key in OUTPUT_FACTORS})

    def forward(self, x):
        features = F.relu(self.body(F.relu(self.head(x))))
        outputs = {}
        for key, factor in OUTPUT_FACTORS.items():
            pooled_x = F.avg_pool2d(x, factor) if factor > 1 else x
            pooled_features = F.avg_pool2d(features, factor) if factor > 1 else features
            outputs[key] = pooled_x + self.tails[key](pooled_features)
        return outputs if self.training else outputs['final']


@pytest.fixture(autouse=True, scope='module')
def tiny_net_registered():
    """Registered only while this module's tests run, so other tests that list the
    registry's archs don't see it (the registry has no public unregister)."""
    ARCH_REGISTRY.register(TinyMultiOutputNet)
    yield
    ARCH_REGISTRY._obj_map.pop(TinyMultiOutputNet.__name__)


TINY_FAKE = {'type': 'TinyMultiOutputNet', 'width': 8}
NETWORKS = [pytest.param(TINY_FAKE, id='fake'), pytest.param(TINY_SGENET, id='sgenet')]


def make_opt(tmp_path, network_g=TINY_FAKE, **train_overrides):
    """An option dict shaped like the one BasicSR's parse_options returns for training."""
    root = tmp_path / 'experiments' / 'unit'
    train = {
        'ema_decay': 0,
        'optim_g': {'type': 'Adam', 'lr': 2e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
        'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [100], 'restart_weights': [1],
                      'eta_min': 1e-7},
        'total_iter': 100,
        'warmup_iter': -1,
        'pixel_opt': {'type': 'MultiScaleCharbonnierEdgeLoss', 'loss_weight': 1.0, 'eps': 1e-3,
                      'edge_weight': 0.05},
    }
    train.update(train_overrides)
    return {
        'name': 'unit', 'model_type': 'SGENetModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'dist': False, 'rank': 0, 'world_size': 1, 'is_train': True, 'auto_resume': False,
        'network_g': dict(network_g),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                 'experiments_root': str(root), 'models': str(root / 'models'),
                 'training_states': str(root / 'training_states'), 'log': str(root),
                 'visualization': str(root / 'visualization')},
        'train': train,
        'val': {'val_freq': 10, 'save_img': True,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 10, 'save_checkpoint_freq': 10, 'use_tb_logger': False},
    }


def smooth_pair(size=16, seed=0, batch=1):
    """A smooth sharp image and its box-blurred copy, (batch, 3, size, size) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, size // 4, size // 4, generator=generator)
    sharp = F.interpolate(coarse, size=(size, size), mode='bilinear', align_corners=False)
    blurred = F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode='replicate'), 5, stride=1)
    return {'lq': blurred, 'gt': sharp}


def parameters_of(net):
    return {name: value.detach().clone() for name, value in net.named_parameters()}


# ----- training step --------------------------------------------------------------------

@pytest.mark.parametrize('network_g', NETWORKS)
def test_training_lowers_the_loss_on_a_fixed_pair(tmp_path, network_g):
    torch.manual_seed(0)
    model = build_model(make_opt(tmp_path, network_g))
    assert isinstance(model, SGENetModel)
    model.feed_data(smooth_pair(size=16, batch=2))
    totals = []
    for current_iter in range(1, 11):
        model.optimize_parameters(current_iter)
        totals.append(model.get_current_log()['l_total'])
    assert all(math.isfinite(value) for value in totals)
    assert totals[-1] < 0.9 * totals[0], totals
    # self.output is the final image, at full resolution.
    assert torch.is_tensor(model.output) and model.output.shape == (2, 3, 16, 16)


@pytest.mark.parametrize('network_g', NETWORKS)
def test_log_dict_has_each_output_term_pixel_sum_and_total(tmp_path, network_g):
    model = build_model(make_opt(tmp_path, network_g))
    model.feed_data(smooth_pair())
    model.optimize_parameters(1)
    log = model.get_current_log()
    output_keys = list(model.net_g.train()(model.lq).keys())
    assert list(log) == [f'l_pix_{key}' for key in output_keys] + ['l_pix', 'l_total']
    assert log['l_pix'] == pytest.approx(sum(log[f'l_pix_{key}'] for key in output_keys), rel=1e-5)
    assert log['l_total'] == pytest.approx(log['l_pix'], rel=1e-6)


def test_strict_pixel_loss_logs_only_stage2_scales(tmp_path):
    pixel_opt = {'type': 'MultiScaleCharbonnierEdgeLoss', 'strict': True}
    model = build_model(make_opt(tmp_path, pixel_opt=pixel_opt))
    model.feed_data(smooth_pair())
    model.optimize_parameters(1)
    assert list(model.get_current_log()) == ['l_pix_final', 'l_pix_stage2_cem2', 'l_pix_stage2_cem3', 'l_pix',
                                             'l_total']


def test_sgenet_without_cem_and_strict_loss_supervises_final_only(tmp_path):
    pixel_opt = {'type': 'MultiScaleCharbonnierEdgeLoss', 'strict': True}
    model = build_model(make_opt(tmp_path, dict(TINY_SGENET, use_cem=False), pixel_opt=pixel_opt))
    model.feed_data(smooth_pair())
    model.optimize_parameters(1)
    assert list(model.get_current_log()) == ['l_pix_final', 'l_pix', 'l_total']


def test_plain_pixel_and_perceptual_losses_see_only_the_final_image(tmp_path):
    model = build_model(make_opt(tmp_path, pixel_opt={'type': 'L1Loss', 'loss_weight': 1.0}))
    seen_shapes = []

    def fake_perceptual(output, gt):
        seen_shapes.append(tuple(output.shape))
        return (output - gt).abs().mean(), None

    model.cri_perceptual = fake_perceptual
    model.feed_data(smooth_pair(size=16))
    model.optimize_parameters(1)
    assert seen_shapes == [(1, 3, 16, 16)]
    log = model.get_current_log()
    assert list(log) == ['l_pix', 'l_percep', 'l_total']
    assert log['l_total'] == pytest.approx(log['l_pix'] + log['l_percep'], rel=1e-6)


def test_ema_network_follows_the_trained_network(tmp_path):
    model = build_model(make_opt(tmp_path, ema_decay=0.9))
    before = parameters_of(model.net_g)
    torch.testing.assert_close(parameters_of(model.net_g_ema), before)
    model.feed_data(smooth_pair())
    model.optimize_parameters(1)
    after = parameters_of(model.net_g)
    ema = parameters_of(model.net_g_ema)
    for name in before:
        torch.testing.assert_close(ema[name], 0.9 * before[name] + 0.1 * after[name])
    assert any(not torch.equal(ema[name], before[name]) for name in before)
    assert not model.net_g_ema.training


def test_nan_loss_raises_with_iteration_and_does_not_step(tmp_path):
    model = build_model(make_opt(tmp_path))
    batch = smooth_pair()
    batch['lq'][0, 0, 3, 3] = float('nan')
    model.feed_data(batch)
    before = parameters_of(model.net_g)
    with pytest.raises(RuntimeError, match=r'iteration 7: l_pix_final=nan.*\(lq\).*learning rate.*mixed_precision'):
        model.optimize_parameters(7)
    torch.testing.assert_close(parameters_of(model.net_g), before)


def test_inf_loss_from_the_network_raises_without_blaming_the_data(tmp_path):
    model = build_model(make_opt(tmp_path))
    with torch.no_grad():
        model.net_g.tails['sam'].bias.fill_(float('inf'))
    model.feed_data(smooth_pair())
    with pytest.raises(RuntimeError, match=r'iteration 3: .*l_pix_sam=(nan|inf)') as error:
        model.optimize_parameters(3)
    assert 'batch itself' not in str(error.value)


def test_distributed_run_checks_the_loss_on_every_rank(tmp_path, torchrun_env):
    """One gloo rank: the all-reduced finiteness check and the loss reduction run."""
    torch.distributed.init_process_group('gloo')
    try:
        opt = make_opt(tmp_path)
        opt['dist'] = True
        model = build_model(opt)
        assert isinstance(model.net_g, torch.nn.parallel.DistributedDataParallel)
        model.feed_data(smooth_pair())
        model.optimize_parameters(1)
        assert math.isfinite(model.get_current_log()['l_total'])
        batch = smooth_pair()
        batch['gt'][:] = float('inf')
        model.feed_data(batch)
        with pytest.raises(NonFiniteLossError, match=r'iteration 2 \(here or on another rank\).*\(gt\)'):
            model.optimize_parameters(2)
    finally:
        torch.distributed.destroy_process_group()


# ----- mixed precision --------------------------------------------------------------------

@pytest.mark.parametrize('network_g', NETWORKS)
def test_bf16_autocast_trains_on_cpu_with_fp32_losses(tmp_path, network_g, native_bf16):
    model = build_model(make_opt(tmp_path, network_g, mixed_precision='bf16'))
    assert model.train_precision == 'bf16' and model.grad_scaler is None
    model.feed_data(smooth_pair(size=16))
    before = parameters_of(model.net_g)
    model.optimize_parameters(1)
    log = model.get_current_log()
    assert all(math.isfinite(value) for value in log.values())
    assert model.output.dtype == torch.float32
    assert any(not torch.equal(value, before[name]) for name, value in parameters_of(model.net_g).items())


def test_bf16_validation_autocast_gives_an_fp32_tensor(tmp_path, native_bf16):
    opt = make_opt(tmp_path)
    opt['val']['mixed_precision'] = 'bf16'
    model = build_model(opt)
    model.feed_data(smooth_pair(size=16))
    model.test()
    assert torch.is_tensor(model.output) and model.output.dtype == torch.float32
    assert model.net_g.training  # SRModel.test puts it back


@pytest.mark.parametrize('section', ['train', 'val'])
def test_fp16_on_cpu_is_rejected_naming_the_option(tmp_path, section):
    opt = make_opt(tmp_path)
    opt[section]['mixed_precision'] = 'fp16'
    with pytest.raises(ValueError, match=rf'{section}\.mixed_precision.*CUDA'):
        build_model(opt)


@pytest.mark.parametrize('setting', [None, False, 'null', 'fp32', 'FP32'])
def test_full_precision_spellings_turn_autocast_off(tmp_path, setting):
    model = build_model(make_opt(tmp_path, mixed_precision=setting))
    assert model.train_precision == 'fp32' and model.grad_scaler is None


def test_bf16_on_a_cpu_without_native_bf16_is_refused_saying_why(tmp_path, monkeypatch):
    from basicsr_sgenet.integration import precision
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: False)
    with pytest.raises(ValueError, match=r'train\.mixed_precision is bf16 on cpu, but this CPU has no native bf16'):
        build_model(make_opt(tmp_path, mixed_precision='bf16'))


def test_unknown_precision_is_rejected_naming_the_option(tmp_path):
    with pytest.raises(ValueError, match=r"train\.mixed_precision .*'int8'"):
        build_model(make_opt(tmp_path, mixed_precision='int8'))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='fp16 autocast with a gradient scaler needs CUDA')
def test_fp16_with_grad_scaler_on_cuda(tmp_path):
    opt = make_opt(tmp_path, mixed_precision='fp16')
    opt['num_gpu'] = 1
    model = build_model(opt)
    assert model.grad_scaler is not None
    model.feed_data(smooth_pair(size=16))
    for current_iter in range(1, 4):
        model.optimize_parameters(current_iter)
    assert all(math.isfinite(value) for value in model.get_current_log().values())


# ----- validation ----------------------------------------------------------------------

class PairList(Dataset):
    """What BasicSR's validation reads from a dataloader: opt['name'], lq, gt, lq_path."""

    def __init__(self, pairs):
        self.opt = {'name': 'tiny_val'}
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        return {'lq': self.pairs[index]['lq'][0], 'gt': self.pairs[index]['gt'][0],
                'lq_path': f'/nowhere/img{index}.png'}


@pytest.mark.parametrize('network_g', NETWORKS)
def test_validation_computes_psnr_with_the_ema_net_and_saves_images(tmp_path, network_g):
    model = build_model(make_opt(tmp_path, network_g, ema_decay=0.5))
    pairs = [smooth_pair(size=16, seed=seed) for seed in range(2)]
    model.feed_data(smooth_pair(size=16, seed=5))
    model.optimize_parameters(1)

    model.validation(DataLoader(PairList(pairs), batch_size=1), 1, None, save_img=True)

    expected = []
    with torch.no_grad():
        for pair in pairs:
            restored = model.net_g_ema(pair['lq'])
            assert torch.is_tensor(restored)
            expected.append(calculate_psnr(tensor2img([restored]), tensor2img([pair['gt']]), crop_border=0))
    assert model.metric_results['psnr'] == pytest.approx(np.mean(expected), rel=1e-6)
    assert model.best_metric_results['tiny_val']['psnr']['iter'] == 1
    for index in range(2):
        assert os.path.isfile(tmp_path / 'experiments' / 'unit' / 'visualization' / f'img{index}' / f'img{index}_1.png')
    assert model.net_g.training


def test_checkpoints_reload_into_a_fresh_model(tmp_path):
    opt = make_opt(tmp_path, ema_decay=0.5)
    for folder in ('models', 'training_states'):
        os.makedirs(opt['path'][folder])
    model = build_model(opt)
    model.feed_data(smooth_pair())
    for current_iter in (1, 2):
        model.optimize_parameters(current_iter)
    model.save(epoch=0, current_iter=2)

    reloaded_opt = copy.deepcopy(opt)
    reloaded_opt['path']['pretrain_network_g'] = os.path.join(opt['path']['models'], 'net_g_2.pth')
    reloaded = build_model(reloaded_opt)
    state = torch.load(os.path.join(opt['path']['training_states'], '2.state'), map_location='cpu')
    reloaded.resume_training(state)
    torch.testing.assert_close(parameters_of(reloaded.net_g), parameters_of(model.net_g))
    torch.testing.assert_close(parameters_of(reloaded.net_g_ema), parameters_of(model.net_g_ema))
    assert reloaded.optimizer_g.state_dict()['state'].keys() == model.optimizer_g.state_dict()['state'].keys()


def test_test_mode_model_builds_without_training_options(tmp_path):
    opt = make_opt(tmp_path)
    opt['is_train'] = False
    del opt['train']
    model = build_model(opt)
    model.feed_data(smooth_pair(size=16))
    model.test()
    assert model.output.shape == (1, 3, 16, 16)


# ----- BasicSR's trainer end to end --------------------------------------------------------

def test_basicsr_trainer_runs_sgenet_on_cpu(tmp_path):
    name = 'sgenet_tiny_cpu'
    write_pairs(tmp_path / 'pairs')
    opt = training_options(tmp_path / 'pairs', name, total_iter=20, checkpoint_every=10)
    opt['train']['ema_decay'] = 0.9
    opt['train']['optim_g']['lr'] = 2e-3
    option_file = write_options(tmp_path / 'train_tiny.yml', opt)

    result = run_python(['-m', 'basicsr_sgenet.train', '-opt', str(option_file)], cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    experiment = tmp_path / 'experiments' / name
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    assert (experiment / 'models' / 'net_g_10.pth').is_file()
    assert (experiment / 'training_states' / '20.state').is_file()
    checkpoint = torch.load(experiment / 'models' / 'net_g_latest.pth', map_location='cpu')
    assert set(checkpoint) == {'params', 'params_ema'}
    tb_files = os.listdir(tmp_path / 'tb_logger' / name)
    assert any(file.startswith('events.out.tfevents') for file in tb_files), tb_files
    events = EventAccumulator(str(tmp_path / 'tb_logger' / name))
    events.Reload()
    scalar_tags = set(events.Tags()['scalars'])
    assert {'losses/l_total', 'losses/l_pix', 'losses/l_pix_final', 'losses/l_pix_stage1_cem3',
            'metrics/tiny_val/psnr'} <= scalar_tags, scalar_tags

    log_files = [file for file in os.listdir(experiment) if file.startswith(f'train_{name}') and file.endswith('.log')]
    assert len(log_files) == 1
    log_text = (experiment / log_files[0]).read_text()
    totals = [float(value) for value in re.findall(r'l_total: ([-+.\deE]+)', log_text)]
    assert len(totals) == 20
    assert 'l_pix_final:' in log_text and 'l_pix_stage1_cem3:' in log_text
    assert np.mean(totals[-5:]) < np.mean(totals[:5]), totals
    assert re.search(r'# psnr: \d+\.\d+', log_text)


class _RecordingLogger:
    def __init__(self):
        self.warnings = []

    def warning(self, message):
        self.warnings.append(message)


def test_a_network_that_restores_nothing_is_reported_at_logging_iterations(tmp_path, monkeypatch):
    logger = _RecordingLogger()
    monkeypatch.setattr('basicsr_sgenet.models.deblur_model.get_root_logger', lambda: logger)
    model = build_model(make_opt(tmp_path, network_g=TINY_SGENET))
    model.feed_data(smooth_pair(size=16))
    model.optimize_parameters(10)
    assert logger.warnings == []  # a working network changes the image
    # A dead last decoder level: the output conv sees zeros; zero weights do the same.
    torch.nn.init.zeros_(model.net_g.output_conv.weight)
    model.optimizer_g = torch.optim.SGD(model.net_g.parameters(), lr=0)  # keep it dead
    model.optimize_parameters(9)
    assert logger.warnings == []  # not a logging iteration (print_freq 10)
    model.optimize_parameters(20)
    assert len(logger.warnings) == 1 and 'Iteration 20' in logger.warnings[0]
    assert 'equals the blurred input exactly' in logger.warnings[0]
