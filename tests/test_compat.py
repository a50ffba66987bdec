"""Each basicsr 1.4.2 fix in compat.py: the upstream problem still shows on this stack
(so the fix is needed), and the fix makes the operation work."""
import collections

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import basicsr.train
import basicsr.utils.options
from basicsr.models.base_model import BaseModel
from basicsr_sgenet import compat
from basicsr_sgenet.errors import LaunchError
from basicsr_sgenet.resume import BadStateError, load_state_file

from conftest import run_python

NO_CUDA = not torch.cuda.is_available()


def test_import_basicsr_fails_without_functional_tensor_alias():
    plain = run_python(['-c', 'import basicsr'], BASICSR_SGENET_AUTOLOAD='0')
    assert plain.returncode != 0 and 'functional_tensor' in plain.stderr
    fixed = run_python(['-c', 'import basicsr_sgenet, basicsr; print(basicsr.__version__)'])
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == '1.4.2'


def _multistep_scheduler_state():
    from basicsr.models.lr_scheduler import MultiStepRestartLR
    optimizer = torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=1e-3)
    return MultiStepRestartLR(optimizer, milestones=[10, 20]).state_dict()


def test_basicsr_states_load_weights_only(tmp_path):
    """Resume states hold BasicSR's scheduler state (a Counter for MultiStepRestartLR) and
    load under torch's safe ``weights_only=True`` loader that resume uses."""
    path = tmp_path / '1.state'
    torch.save({'iter': 1, 'optimizers': [], 'schedulers': [_multistep_scheduler_state()]}, path)
    state = load_state_file(str(path), 'cpu')
    assert isinstance(state['schedulers'][0]['milestones'], collections.Counter)


def _training_state(tmp_path, iteration):
    """A BasicSR-style experiment folder holding the state and weights of one iteration."""
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir(exist_ok=True)
    models.mkdir(exist_ok=True)
    optimizer = torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=1e-3)
    torch.save({'epoch': 0, 'iter': iteration, 'optimizers': [optimizer.state_dict()],
                'schedulers': [_multistep_scheduler_state()]}, states / f'{iteration}.state')
    torch.save({'params': {}}, models / f'net_g_{iteration}.pth')
    return states / f'{iteration}.state'


def _resume_opt(tmp_path, resume_state=None, auto_resume=False):
    return {'auto_resume': auto_resume, 'network_g': {'type': 'SGENet'},
            'path': {'resume_state': resume_state, 'training_states': str(tmp_path / 'training_states'),
                     'models': str(tmp_path / 'models')}}


@pytest.mark.skipif(not NO_CUDA, reason='the upstream failure is specific to machines without CUDA')
def test_upstream_resume_fails_without_cuda(tmp_path):
    path = _training_state(tmp_path, 5)
    with pytest.raises((RuntimeError, AssertionError)):
        compat.UPSTREAM['load_resume_state'](_resume_opt(tmp_path, str(path)))


def test_resume_loads_state_onto_available_device(tmp_path):
    path = _training_state(tmp_path, 5)
    assert basicsr.train.load_resume_state is compat.load_resume_state
    opt = _resume_opt(tmp_path, str(path))
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 5
    assert opt['path']['pretrain_network_g'].endswith('net_g_5.pth')


def test_auto_resume_skips_truncated_newest_state(tmp_path):
    _training_state(tmp_path, 5)
    newest = _training_state(tmp_path, 10)
    newest.write_bytes(newest.read_bytes()[:100])  # killed while writing
    opt = _resume_opt(tmp_path, auto_resume=True)
    state = compat.load_resume_state(opt)
    assert state['iter'] == 5
    assert opt['path']['resume_state'].endswith('5.state')
    assert newest.exists(), 'a bad state is skipped, never deleted'


def test_auto_resume_skips_state_without_weights(tmp_path):
    _training_state(tmp_path, 5)
    _training_state(tmp_path, 10)
    (tmp_path / 'models' / 'net_g_10.pth').unlink()
    assert compat.load_resume_state(_resume_opt(tmp_path, auto_resume=True))['iter'] == 5


def test_auto_resume_with_nothing_saved_starts_fresh(tmp_path):
    assert compat.load_resume_state(_resume_opt(tmp_path, auto_resume=True)) is None
    (tmp_path / 'training_states').mkdir()
    assert compat.load_resume_state(_resume_opt(tmp_path, auto_resume=True)) is None


def test_auto_resume_needs_the_weights_of_every_network(tmp_path):
    for iteration in (5, 10):
        _training_state(tmp_path, iteration)
        torch.save({'params': {}}, tmp_path / 'models' / f'net_d_{iteration}.pth')
    (tmp_path / 'models' / 'net_d_10.pth').unlink()
    opt = _resume_opt(tmp_path, auto_resume=True)
    opt['network_d'] = {'type': 'VGGStyleDiscriminator'}
    assert compat.load_resume_state(opt)['iter'] == 5
    opt['path']['ignore_resume_networks'] = ['network_d']
    assert compat.load_resume_state(opt)['iter'] == 10


def test_auto_resume_refuses_to_start_over_when_no_state_is_usable(tmp_path):
    path = _training_state(tmp_path, 5)
    path.write_bytes(b'truncated')
    with pytest.raises(BadStateError, match='none is usable'):
        compat.load_resume_state(_resume_opt(tmp_path, auto_resume=True))
    for weights in (tmp_path / 'models').iterdir():
        weights.unlink()
    (tmp_path / 'models').rmdir()
    with pytest.raises(BadStateError, match='no net_g_5.pth'):
        compat.load_resume_state(_resume_opt(tmp_path, auto_resume=True))


def test_explicit_truncated_resume_state_is_a_clear_error(tmp_path):
    path = _training_state(tmp_path, 5)
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(BadStateError, match='5.state'):
        compat.load_resume_state(_resume_opt(tmp_path, str(path)))


@pytest.mark.skipif(not NO_CUDA, reason='the upstream failure is specific to machines without CUDA')
def test_upstream_init_dist_fails_without_cuda(tmp_path):
    # In a child process: upstream also sets the multiprocessing start method globally.
    code = ('import basicsr_sgenet; from basicsr_sgenet import compat\n'
            'try:\n    compat.UPSTREAM["init_dist"]("pytorch")\n'
            'except ZeroDivisionError:\n    print("ZeroDivisionError")\n')
    result = run_python(['-c', code], RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                        MASTER_PORT='29555')
    assert 'ZeroDivisionError' in result.stdout, result.stderr


def test_init_dist_uses_gloo_without_cuda(torchrun_env):
    assert basicsr.utils.options.init_dist is compat.init_dist
    compat.init_dist('pytorch')
    try:
        assert dist.is_initialized()
        assert dist.get_backend() == ('nccl' if not NO_CUDA else 'gloo')
    finally:
        dist.destroy_process_group()


def test_launcher_pytorch_outside_torchrun_is_a_clear_error(monkeypatch):
    for name in compat.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('RANK', '')
    with pytest.raises(LaunchError, match='missing: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT'):
        compat.init_dist('pytorch')


@pytest.mark.skipif(not NO_CUDA, reason='about machines without CUDA')
def test_slurm_without_cuda_is_a_clear_error():
    with pytest.raises(LaunchError, match='torchrun'):
        compat.init_dist('slurm')


class _DistributedModelStub:
    """What BaseModel.model_to_device reads from a model: its options and device."""
    opt = {'dist': True, 'num_gpu': 0}
    device = torch.device('cpu')


@pytest.mark.skipif(not NO_CUDA, reason='the upstream failure is specific to machines without CUDA')
def test_ddp_without_cuda(torchrun_env):
    dist.init_process_group('gloo')
    try:
        with pytest.raises((RuntimeError, AssertionError)):
            compat.UPSTREAM['model_to_device'](_DistributedModelStub(), nn.Conv2d(3, 3, 1))
        wrapped = BaseModel.model_to_device(_DistributedModelStub(), nn.Conv2d(3, 3, 1))
        assert isinstance(wrapped, DistributedDataParallel)
        assert wrapped.device_ids is None
    finally:
        dist.destroy_process_group()


def test_broken_torchvision_is_one_clear_sentence(tmp_path):
    # A torchvision that raises on import, as a CUDA torchvision wheel does against a CPU torch.
    fake = tmp_path / 'torchvision'
    fake.mkdir()
    (fake / '__init__.py').write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    result = run_python(['-m', 'basicsr_sgenet.train', '-opt', 'x.yml'],
                        PYTHONPATH=f'{tmp_path}:{compat_repo_root()}', BASICSR_SGENET_AUTOLOAD='0')
    assert result.returncode != 0
    assert result.stderr.strip().startswith('error: torchvision cannot be imported'), result.stderr
    assert 'Traceback' not in result.stderr


def compat_repo_root():
    from conftest import REPO_ROOT
    return REPO_ROOT


class _SavingModelStub:
    """What BaseModel's save methods read: options, optimizers, schedulers."""

    def __init__(self, tmp_path):
        self.opt = {'path': {'models': str(tmp_path), 'training_states': str(tmp_path)}}
        self.optimizers = [torch.optim.Adam(nn.Linear(2, 2).parameters())]
        self.schedulers = []

    def get_bare_model(self, net):
        return net


def _interrupted_torch_save(obj, f, *args, **kwargs):
    """torch.save that dies after writing a few bytes, as a kill -9 mid-write would."""
    if isinstance(f, str):
        with open(f, 'wb') as handle:
            handle.write(b'PK\x03\x04 partial')
    else:
        f.write(b'PK\x03\x04 partial')
        f.flush()
    raise KeyboardInterrupt('killed mid-write')


@pytest.mark.parametrize('method', ['save_training_state', 'save_network'])
def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch, method):
    import basicsr.models.base_model as base_model_module

    def call(model):
        if method == 'save_training_state':
            BaseModel.save_training_state(model, epoch=0, current_iter=7)
            return tmp_path / '7.state'
        BaseModel.save_network(model, nn.Linear(2, 2), 'net_g', 7)
        return tmp_path / 'net_g_7.pth'

    assert isinstance(base_model_module.torch, compat._TorchWithAtomicSave)
    target = call(_SavingModelStub(tmp_path))
    assert target.exists()
    good_bytes = target.read_bytes()

    # Upstream writes the final name directly: an interrupted write leaves it truncated.
    monkeypatch.setattr(torch, 'save', _interrupted_torch_save)
    monkeypatch.setattr(base_model_module, 'torch', compat.UPSTREAM['base_model_torch'])
    with pytest.raises(KeyboardInterrupt):
        call(_SavingModelStub(tmp_path))
    assert target.read_bytes().startswith(b'PK\x03\x04 partial')

    # Patched: the interrupted write leaves the previous complete file and no temp files.
    target.write_bytes(good_bytes)
    monkeypatch.setattr(base_model_module, 'torch', compat._TorchWithAtomicSave('torch'))
    with pytest.raises(KeyboardInterrupt):
        call(_SavingModelStub(tmp_path))
    assert target.read_bytes() == good_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
