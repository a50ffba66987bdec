"""GPU code paths a CPU can check: how a run's batch is laid out over GPUs and processes
(checked before anything is written), the single-process default of one GPU, mixed
precision refused under DataParallel, the slurm timeout, data-loader workers, and
Restormer's layer norm under fp16."""
import datetime
import os

import pytest
import torch

from basicsr_sgenet.integration import batches, patches, pipeline
from basicsr_sgenet.integration.errors import OptionError
from basicsr_sgenet.integration.options import load_options
from basicsr_sgenet.models.progressive_patches import ProgressivePatches
from conftest import REPO_ROOT
from tiny_experiment import training_options, write_options, write_pairs

RESTORMER = os.path.join(REPO_ROOT, 'options', 'train_Restormer_GoPro.yml')
MIMOUNET = os.path.join(REPO_ROOT, 'options', 'train_MIMOUNet_GoPro.yml')


# ----- batch layout -------------------------------------------------------------------------

@pytest.mark.parametrize('processes, expected', [(8, [8, 5, 4, 2, 1, 1]), (4, [16, 10, 8, 4, 2, 2]),
                                                 (1, [64, 40, 32, 16, 8, 8])])
def test_restormers_progressive_batches_keep_the_recipes_total_on_any_gpu_count(processes, expected):
    train = load_options(RESTORMER)['train']
    assert ProgressivePatches.from_options(train, processes=processes).mini_batch_sizes == expected
    opt = load_options(RESTORMER)
    batches.check_batches(opt, processes, 1)  # the loader's 64 in all cover the first stage


def test_progressive_batches_that_do_not_split_over_the_processes_are_refused():
    with pytest.raises(OptionError, match=r'total_mini_batch_sizes .*40 cannot be split evenly over the 16'):
        ProgressivePatches.from_options(load_options(RESTORMER)['train'], processes=16)


def test_a_progressive_stage_larger_than_the_loaded_batch_is_refused():
    opt = load_options(RESTORMER)
    opt['datasets']['train']['total_batch_size'] = 32
    with pytest.raises(OptionError, match=r'a stage keeps 64 samples per process but the loader yields 32'):
        batches.check_batches(opt, 1, 1)


def test_accumulate_must_divide_every_stage_batch():
    opt = load_options(RESTORMER)
    opt['train']['accumulate'] = 2
    batches.check_batches(opt, 1, 1)  # 64 ... 8: all even
    with pytest.raises(OptionError, match=r'train.accumulate is 2 but the train.progressive stage 2 batch per '
                                          r'process is 5'):
        batches.check_batches(opt, 8, 1)


def test_mixed_precision_under_data_parallel_is_refused():
    opt = load_options(MIMOUNET)
    opt['train']['mixed_precision'] = 'bf16'
    batches.check_batches(opt, 4, 1)  # torchrun: fine
    with pytest.raises(OptionError, match=r'train.mixed_precision is bf16 with num_gpu 4 in one process'):
        batches.check_batches(opt, 1, 4)


def test_num_gpu_auto_means_one_gpu_per_process():
    assert batches.resolve_num_gpu('auto', 8) == 1 and batches.resolve_num_gpu('auto', 0) == 0
    assert batches.resolve_num_gpu(4, 8) == 4
    assert batches.run_layout({'num_gpu': 'auto'}, 'none', device_count=8) == (1, 1)
    assert batches.run_layout({'num_gpu': 2}, 'none', device_count=8) == (1, 2)


def test_single_process_run_on_a_multi_gpu_host_pins_num_gpu_to_one(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 8)
    argv = ['-opt', 'x.yml']
    assert pipeline.one_gpu_unless_asked({'num_gpu': 'auto'}, argv, 'none') == argv + ['--force_yml', 'num_gpu=1']
    assert 'using 1 of the 8 GPUs' in capsys.readouterr().out
    assert pipeline.one_gpu_unless_asked({'num_gpu': 'auto'}, ['--force_yml', 'a=1'], 'none') == \
        ['--force_yml', 'num_gpu=1', 'a=1']
    assert pipeline.one_gpu_unless_asked({'num_gpu': 4}, argv, 'none') == argv
    assert pipeline.one_gpu_unless_asked({'num_gpu': 'auto'}, argv, 'pytorch') == argv


def test_a_total_batch_that_does_not_split_over_8_gpus_is_refused_before_anything_is_written(
        tmp_path, monkeypatch, capsys):
    write_pairs(tmp_path / 'data', count=2, size=40)
    opt = training_options(tmp_path / 'data', 'eight', total_iter=2, checkpoint_every=2, validate=False)
    opt['datasets']['train'].pop('batch_size_per_gpu')
    opt['datasets']['train']['total_batch_size'] = 4  # MIMO-UNet's recipe
    yml = write_options(tmp_path / 'eight.yml', opt)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('WORLD_SIZE', '8')
    with pytest.raises(SystemExit) as exit_:
        pipeline.run_pipeline('train', ['-opt', str(yml), '--launcher', 'pytorch'])
    assert exit_.value.code == 2
    assert 'total_batch_size is 4: it must be a positive integer divisible by the 8' in capsys.readouterr().err
    assert not (tmp_path / 'experiments').exists()


# ----- distributed set-up -------------------------------------------------------------------

def test_dist_timeout_reaches_init_process_group_under_slurm(monkeypatch):
    import basicsr.utils.options
    captured = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'set_device', lambda device: captured.update(device=device))
    monkeypatch.setattr(torch.distributed, 'init_process_group', lambda **kwargs: captured.update(kwargs))
    monkeypatch.setattr('subprocess.getoutput', lambda command: 'node-a')
    for name, value in dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_NODELIST='node-[a-b]').items():
        monkeypatch.setenv(name, value)
    for name in ('MASTER_PORT', 'MASTER_ADDR', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        # setenv first, so monkeypatch removes what init_dist will set again after the test
        # (a leaked RANK/WORLD_SIZE would make every later run think it is one of 4 processes).
        monkeypatch.setenv(name, '')
        monkeypatch.delenv(name)
    try:
        patches.install(dist_timeout_minutes=120)
        # As BasicSR's parse_options calls it under slurm: with the option file's dist_params.
        basicsr.utils.options.init_dist('slurm', timeout_minutes=120)
    finally:
        patches.install()
    assert captured == {'device': 1, 'backend': 'nccl', 'timeout': datetime.timedelta(minutes=120)}
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['MASTER_ADDR']) == ('3', '4', 'node-a')


def test_training_loader_workers_persist_between_epochs():
    opt = {'datasets': {'train': {'num_worker_per_gpu': 8}, 'val': {}}}
    patches.keep_loader_workers(opt)
    assert opt['datasets']['train']['persistent_workers'] is True
    opt = {'datasets': {'train': {'num_worker_per_gpu': 8, 'persistent_workers': False}}}
    patches.keep_loader_workers(opt)
    assert opt['datasets']['train']['persistent_workers'] is False
    opt = {'datasets': {'train': {'num_worker_per_gpu': 0}}}
    patches.keep_loader_workers(opt)
    assert 'persistent_workers' not in opt['datasets']['train']


# ----- fp16 numerics ------------------------------------------------------------------------

@pytest.mark.parametrize('with_bias', [True, False])
def test_restormer_layer_norm_stays_finite_on_fp16_activations_above_256(with_bias):
    from basicsr_sgenet.archs.restormer_arch import ChannelLayerNorm
    norm = ChannelLayerNorm(4, with_bias=with_bias)
    x = (torch.arange(4.0).view(1, 4, 1, 1) * 1000).expand(1, 4, 3, 3).half()
    assert not torch.isfinite(x.var(1, unbiased=False)).all()  # what fp16 itself would give
    out = norm(x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), norm(x.float()), rtol=1e-3, atol=1e-3)


def test_bf16_on_a_gpu_needs_native_support_on_that_gpu(monkeypatch):
    from basicsr_sgenet.integration.precision import precision_problem
    capabilities = {0: (9, 0), 1: (7, 0)}  # an H100 and a V100 (bf16 only emulated)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda index: capabilities[index])
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    assert precision_problem('bf16', torch.device('cuda:0')) is None
    assert precision_problem('bf16', 'cuda') is None
    assert 'no native bf16' in precision_problem('bf16', torch.device('cuda:1'))


# ----- what fits where ----------------------------------------------------------------------

def test_training_memory_estimate_scales_with_pixels_and_picks_the_accumulation_that_fits():
    from basicsr_sgenet.tools import training_memory
    from tiny_archs import TINY_ARCHS
    kwargs = TINY_ARCHS['NAFNet']
    on_meta, parameters = training_memory._saved_bytes('NAFNet', kwargs, 64, 'meta')
    on_cpu, _ = training_memory._saved_bytes('NAFNet', kwargs, 32, 'cpu')
    assert on_meta > 0 and on_meta == pytest.approx(4 * on_cpu, rel=0.02)  # the CPU probe's scaling holds
    estimate = training_memory.estimate_step_memory('NAFNet', kwargs, 64)
    assert estimate.how == 'meta' and estimate.parameters == parameters
    assert estimate.bytes_for(8) == 8 * on_meta + 16 * parameters
    budget = estimate.bytes_for(2)
    assert estimate.accumulate_to_fit(8, budget) == 4 and estimate.accumulate_to_fit(8, estimate.bytes_for(8)) == 1
    assert estimate.accumulate_to_fit(8, estimate.bytes_for(1) - 1) is None


def test_a_network_that_cannot_run_on_meta_is_probed_on_the_cpu(monkeypatch):
    from basicsr_sgenet.tools import training_memory
    from tiny_archs import TINY_ARCHS
    real = training_memory._saved_bytes

    def no_meta(arch, kwargs, crop, device):
        if device == 'meta':
            raise RuntimeError('Tensor.item() cannot be called on meta tensors')
        return real(arch, kwargs, crop, device)

    monkeypatch.setattr(training_memory, '_saved_bytes', no_meta)
    estimate = training_memory.estimate_step_memory('NAFNet', TINY_ARCHS['NAFNet'], 128, probe_crop=32)
    assert estimate.how == 'cpu 32x32, scaled'
    assert estimate.activations_per_sample == pytest.approx(16 * real('NAFNet', TINY_ARCHS['NAFNet'], 32, 'cpu')[0])
