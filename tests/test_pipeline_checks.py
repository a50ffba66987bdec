"""Checks the plugin adds to BasicSR's training pipeline: total batch size, checkpoints
that don't fit the network, and the distributed backend the option file asks for."""
import pytest
import torch
import torch.distributed as dist

from basicsr.archs import build_network
from basicsr.models.base_model import BaseModel
from basicsr_sgenet import compat
from basicsr_sgenet.cli import run_pipeline
from basicsr_sgenet.errors import LaunchError, OptionError
from basicsr_sgenet.pipeline_checks import CheckpointMismatchError, split_total_batch_size

from tiny_experiment import TINY_SGENET


def _opt(dist_run, world_size=1, num_gpu=0, **train):
    return {'dist': dist_run, 'world_size': world_size, 'num_gpu': num_gpu, 'datasets': {'train': dict(train)}}


@pytest.mark.parametrize('opt, per_gpu', [
    (_opt(True, world_size=4, total_batch_size=16), 4),
    (_opt(False, num_gpu=0, total_batch_size=16), 16),
    (_opt(False, num_gpu=2, total_batch_size=16), 8),
    (_opt(True, world_size=2, total_batch_size=16, batch_size_per_gpu=8), 8),
    (_opt(True, world_size=2, batch_size_per_gpu=3), 3),
])
def test_total_batch_size_is_split_over_processes(opt, per_gpu):
    split_total_batch_size(opt)
    assert opt['datasets']['train']['batch_size_per_gpu'] == per_gpu


@pytest.mark.parametrize('opt, message', [
    (_opt(True, world_size=3, total_batch_size=16), 'divisible by the 3 processes'),
    (_opt(True, world_size=2, total_batch_size=0), 'positive integer'),
    (_opt(True, world_size=2, total_batch_size=16, batch_size_per_gpu=4), 'set only one of the two'),
])
def test_total_batch_size_that_cannot_be_split_names_the_key(opt, message):
    with pytest.raises(OptionError, match='datasets.train.') as err:
        split_total_batch_size(opt)
    assert message in str(err.value)


class _LoadingModelStub:
    """What BaseModel.load_network uses of a model."""
    _print_different_keys_loading = BaseModel._print_different_keys_loading

    def get_bare_model(self, net):
        return net


def test_checkpoint_of_another_network_is_one_clear_error(tmp_path):
    path = tmp_path / 'net_g_10.pth'
    torch.save({'params': build_network(dict(TINY_SGENET, channels=[8, 12, 20])).state_dict()}, path)
    with pytest.raises(CheckpointMismatchError) as err:
        BaseModel.load_network(_LoadingModelStub(), build_network(dict(TINY_SGENET)), str(path))
    message = str(err.value)
    assert str(path) in message and 'keys with other shapes' in message and 'same network_* options' in message


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointMismatchError, match='net_g_5.pth do not exist'):
        BaseModel.load_network(_LoadingModelStub(), build_network(dict(TINY_SGENET)), str(tmp_path / 'net_g_5.pth'))


def test_matching_checkpoint_still_loads(tmp_path):
    net = build_network(dict(TINY_SGENET))
    torch.save({'params': net.state_dict()}, tmp_path / 'w.pth')
    BaseModel.load_network(_LoadingModelStub(), build_network(dict(TINY_SGENET)), str(tmp_path / 'w.pth'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='about machines without CUDA')
def test_option_file_backend_is_honoured_and_nccl_without_gpus_is_refused(torchrun_env, monkeypatch):
    monkeypatch.setattr(compat, 'requested_dist_backend', 'nccl')
    with pytest.raises(LaunchError, match='dist_params.backend is nccl'):
        compat.init_dist('pytorch')
    monkeypatch.setattr(compat, 'requested_dist_backend', 'gloo')
    compat.init_dist('pytorch')
    try:
        assert dist.get_backend() == 'gloo'
    finally:
        dist.destroy_process_group()


def test_launcher_pytorch_without_torchrun_is_one_line(tmp_path, monkeypatch):
    for name in compat.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    yml = tmp_path / 'o.yml'
    yml.write_text('name: x\nmodel_type: SGENetModel\nnetwork_g: {type: SGENet}\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('sys.argv', ['train.py'])
    with pytest.raises(SystemExit) as exit_:
        run_pipeline('train', ['-opt', str(yml), '--launcher', 'pytorch'])
    assert str(exit_.value).startswith('error: --launcher pytorch needs the environment')


def test_option_file_timeout_reaches_init_process_group(torchrun_env, monkeypatch):
    seen = {}
    monkeypatch.setattr(dist, 'init_process_group', lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(compat, 'requested_dist_backend', 'gloo')
    monkeypatch.setattr(compat, 'requested_dist_timeout_minutes', 90)
    compat.init_dist('pytorch')
    assert seen['timeout'].total_seconds() == 90 * 60


def test_bad_timeout_is_one_line(tmp_path):
    yml = tmp_path / 'o.yml'
    yml.write_text('name: x\nmodel_type: SGENetModel\nnetwork_g: {type: SGENet}\ndist_params: {timeout_minutes: soon}\n')
    with pytest.raises(SystemExit) as exit_:
        run_pipeline('train', ['-opt', str(yml)])
    assert 'dist_params.timeout_minutes must be a positive number' in str(exit_.value)
