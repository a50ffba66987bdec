"""Each patch in patches.py: the upstream problem still shows on this stack (so the patch
is needed), and the patch makes the operation work."""
import collections
import os

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import basicsr.train
import basicsr.utils.options
from basicsr.models.base_model import BaseModel
from basicsr.archs import build_network
from basicsr_sgenet.integration import patches
from basicsr_sgenet.integration.pipeline import run_pipeline
from basicsr_sgenet.integration.errors import BadStateError, CheckpointMismatchError, LaunchError, OptionError
from basicsr_sgenet.integration.patches import split_total_batch_size
from basicsr_sgenet.integration.resume import load_state_file

from conftest import run_python
from tiny_experiment import TINY_SGENET, training_options, write_options, write_pairs

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture
def default_patches():
    """Re-install the patches with their default settings after a test changed them."""
    yield
    patches.install()


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
        patches.UPSTREAM['load_resume_state'](_resume_opt(tmp_path, str(path)))


def test_resume_loads_state_onto_available_device(tmp_path):
    path = _training_state(tmp_path, 5)
    assert basicsr.train.load_resume_state is patches.load_resume_state
    opt = _resume_opt(tmp_path, str(path))
    state = basicsr.train.load_resume_state(opt)
    assert state['iter'] == 5
    assert opt['path']['pretrain_network_g'].endswith('net_g_5.pth')


def test_auto_resume_skips_truncated_newest_state(tmp_path):
    _training_state(tmp_path, 5)
    newest = _training_state(tmp_path, 10)
    newest.write_bytes(newest.read_bytes()[:100])  # killed while writing
    opt = _resume_opt(tmp_path, auto_resume=True)
    state = patches.load_resume_state(opt)
    assert state['iter'] == 5
    assert opt['path']['resume_state'].endswith('5.state')
    assert newest.exists(), 'a bad state is skipped, never deleted'


def test_auto_resume_skips_state_without_weights(tmp_path):
    _training_state(tmp_path, 5)
    _training_state(tmp_path, 10)
    (tmp_path / 'models' / 'net_g_10.pth').unlink()
    assert patches.load_resume_state(_resume_opt(tmp_path, auto_resume=True))['iter'] == 5


def test_auto_resume_with_nothing_saved_starts_fresh(tmp_path):
    assert patches.load_resume_state(_resume_opt(tmp_path, auto_resume=True)) is None
    (tmp_path / 'training_states').mkdir()
    assert patches.load_resume_state(_resume_opt(tmp_path, auto_resume=True)) is None


def test_auto_resume_needs_the_weights_of_every_network(tmp_path):
    for iteration in (5, 10):
        _training_state(tmp_path, iteration)
        torch.save({'params': {}}, tmp_path / 'models' / f'net_d_{iteration}.pth')
    (tmp_path / 'models' / 'net_d_10.pth').unlink()
    opt = _resume_opt(tmp_path, auto_resume=True)
    opt['network_d'] = {'type': 'VGGStyleDiscriminator'}
    assert patches.load_resume_state(opt)['iter'] == 5
    opt['path']['ignore_resume_networks'] = ['network_d']
    assert patches.load_resume_state(opt)['iter'] == 10


def test_auto_resume_refuses_to_start_over_when_no_state_is_usable(tmp_path):
    path = _training_state(tmp_path, 5)
    path.write_bytes(b'truncated')
    with pytest.raises(BadStateError, match='none is usable'):
        patches.load_resume_state(_resume_opt(tmp_path, auto_resume=True))
    for weights in (tmp_path / 'models').iterdir():
        weights.unlink()
    (tmp_path / 'models').rmdir()
    with pytest.raises(BadStateError, match='no net_g_5.pth'):
        patches.load_resume_state(_resume_opt(tmp_path, auto_resume=True))


def test_explicit_truncated_resume_state_is_a_clear_error(tmp_path):
    path = _training_state(tmp_path, 5)
    path.write_bytes(b'not a checkpoint')
    with pytest.raises(BadStateError, match='5.state'):
        patches.load_resume_state(_resume_opt(tmp_path, str(path)))


@pytest.mark.skipif(not NO_CUDA, reason='the upstream failure is specific to machines without CUDA')
def test_upstream_init_dist_fails_without_cuda(tmp_path):
    # In a child process: upstream also sets the multiprocessing start method globally.
    code = ('from basicsr_sgenet.integration import patches; patches.install()\n'
            'try:\n    patches.UPSTREAM["init_dist"]("pytorch")\n'
            'except ZeroDivisionError:\n    print("ZeroDivisionError")\n')
    result = run_python(['-c', code], RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                        MASTER_PORT='29555')
    assert 'ZeroDivisionError' in result.stdout, result.stderr


def test_init_dist_uses_gloo_without_cuda(torchrun_env):
    basicsr.utils.options.init_dist('pytorch')
    try:
        assert dist.is_initialized()
        assert dist.get_backend() == ('nccl' if not NO_CUDA else 'gloo')
    finally:
        dist.destroy_process_group()


def test_launcher_pytorch_outside_torchrun_is_a_clear_error(monkeypatch):
    for name in patches.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('RANK', '')
    with pytest.raises(LaunchError, match='missing: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT'):
        basicsr.utils.options.init_dist('pytorch')


@pytest.mark.skipif(not NO_CUDA, reason='about machines without CUDA')
def test_slurm_without_cuda_is_a_clear_error():
    with pytest.raises(LaunchError, match='torchrun'):
        basicsr.utils.options.init_dist('slurm')


class _DistributedModelStub:
    """What BaseModel.model_to_device reads from a model: its options and device."""
    opt = {'dist': True, 'num_gpu': 0}
    device = torch.device('cpu')


@pytest.mark.skipif(not NO_CUDA, reason='the upstream failure is specific to machines without CUDA')
def test_ddp_without_cuda(torchrun_env):
    dist.init_process_group('gloo')
    try:
        with pytest.raises((RuntimeError, AssertionError)):
            patches.UPSTREAM['model_to_device'](_DistributedModelStub(), nn.Conv2d(3, 3, 1))
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
                        PYTHONPATH=f'{tmp_path}:{repo_root()}', BASICSR_SGENET_AUTOLOAD='0')
    assert result.returncode != 0
    assert result.stderr.strip().startswith('error: torchvision cannot be imported'), result.stderr
    assert 'Traceback' not in result.stderr


def repo_root():
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

    assert isinstance(base_model_module.torch, patches._TorchWithAtomicSave)
    target = call(_SavingModelStub(tmp_path))
    assert target.exists()
    good_bytes = target.read_bytes()

    # Upstream writes the final name directly: an interrupted write leaves it truncated.
    monkeypatch.setattr(torch, 'save', _interrupted_torch_save)
    monkeypatch.setattr(base_model_module, 'torch', patches.UPSTREAM['base_model_torch'])
    with pytest.raises(KeyboardInterrupt):
        call(_SavingModelStub(tmp_path))
    assert target.read_bytes().startswith(b'PK\x03\x04 partial')

    # Patched: the interrupted write leaves the previous complete file and no temp files.
    target.write_bytes(good_bytes)
    monkeypatch.setattr(base_model_module, 'torch', patches._TorchWithAtomicSave('torch'))
    with pytest.raises(KeyboardInterrupt):
        call(_SavingModelStub(tmp_path))
    assert target.read_bytes() == good_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


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
    with pytest.raises(CheckpointMismatchError, match='net_g_5.pth does not exist'):
        BaseModel.load_network(_LoadingModelStub(), build_network(dict(TINY_SGENET)), str(tmp_path / 'net_g_5.pth'))


def test_matching_checkpoint_still_loads(tmp_path):
    net = build_network(dict(TINY_SGENET))
    torch.save({'params': net.state_dict()}, tmp_path / 'w.pth')
    BaseModel.load_network(_LoadingModelStub(), build_network(dict(TINY_SGENET)), str(tmp_path / 'w.pth'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='about machines without CUDA')
def test_option_file_backend_is_honoured_and_nccl_without_gpus_is_refused(torchrun_env, default_patches):
    patches.install(dist_backend='nccl')
    with pytest.raises(LaunchError, match='dist_params.backend is nccl'):
        basicsr.utils.options.init_dist('pytorch')
    patches.install(dist_backend='gloo')
    basicsr.utils.options.init_dist('pytorch')
    try:
        assert dist.get_backend() == 'gloo'
    finally:
        dist.destroy_process_group()


def test_launcher_pytorch_without_torchrun_is_one_line(tmp_path, monkeypatch, capsys):
    for name in patches.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    write_pairs(tmp_path / 'data', count=2, size=40)  # a complete option file: the launcher is what is wrong
    yml = write_options(tmp_path / 'o.yml', training_options(tmp_path / 'data', 'x', total_iter=2, validate=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('sys.argv', ['train.py'])
    with pytest.raises(SystemExit) as exit_:
        run_pipeline('train', ['-opt', str(yml), '--launcher', 'pytorch'])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith('error: --launcher pytorch needs the environment')


def test_option_file_timeout_reaches_init_process_group(torchrun_env, monkeypatch, default_patches):
    seen = {}
    monkeypatch.setattr(dist, 'init_process_group', lambda **kwargs: seen.update(kwargs))
    patches.install(dist_backend='gloo', dist_timeout_minutes=90)
    basicsr.utils.options.init_dist('pytorch')
    assert seen['timeout'].total_seconds() == 90 * 60


def test_auto_resume_skips_truncated_weights_beside_an_intact_state(tmp_path):
    _training_state(tmp_path, 5)
    _training_state(tmp_path, 10)
    weights = tmp_path / 'models' / 'net_g_10.pth'
    weights.write_bytes(weights.read_bytes()[:20])  # killed while writing the weights
    opt = _resume_opt(tmp_path, auto_resume=True)
    assert patches.load_resume_state(opt)['iter'] == 5
    assert opt['path']['resume_state'].endswith('5.state')


def test_auto_resume_removes_temporary_files_of_interrupted_saves(tmp_path, capsys):
    _training_state(tmp_path, 5)
    dead_pid = 2**22 + 12345  # above Linux's pid_max default range: no such process
    leftover = tmp_path / 'models' / f'.net_g_10.pth.tmp-{dead_pid}'
    leftover.write_bytes(b'PK partial')
    live = tmp_path / 'models' / f'.net_g_10.pth.tmp-{os.getpid()}'  # a save still running
    live.write_bytes(b'PK partial')
    assert patches.load_resume_state(_resume_opt(tmp_path, auto_resume=True))['iter'] == 5
    assert not leftover.exists() and live.exists()
    assert f'removed {leftover}' in capsys.readouterr().err


def test_resuming_with_a_longer_schedule_continues_on_the_option_file_schedule(tmp_path, monkeypatch,
                                                                              fresh_basicsr_logger):
    from tiny_experiment import training_options, write_options, write_pairs
    write_pairs(tmp_path / 'data', count=2, size=40)
    opt = training_options(tmp_path / 'data', 'extend', total_iter=2, checkpoint_every=2, validate=False)
    yml = write_options(tmp_path / 'extend.yml', opt)
    monkeypatch.chdir(tmp_path)
    run_pipeline('train', ['-opt', str(yml)])
    # The finished run, extended: upstream resumes the 2-iteration schedule and fails at iteration 3.
    opt['train']['total_iter'] = 4
    opt['train']['scheduler']['periods'] = [4]
    write_options(yml, opt)
    run_pipeline('train', ['-opt', str(yml), '--auto_resume'])
    models = tmp_path / 'experiments' / 'extend' / 'models'
    assert (models / 'net_g_4.pth').exists()
    log = sorted((tmp_path / 'experiments' / 'extend').glob('train_extend_*.log'))[-1].read_text()
    assert 'periods: [2] -> [4]' in log and 'continues on the option file\'s schedule from iteration 2' in log


def test_upstream_resume_with_a_longer_schedule_fails_in_the_scheduler():
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR
    optimizer = torch.optim.Adam(nn.Linear(2, 2).parameters(), lr=1e-3)
    finished = CosineAnnealingRestartLR(optimizer, periods=[2], restart_weights=[1])
    extended = CosineAnnealingRestartLR(optimizer, periods=[4], restart_weights=[1])
    extended.load_state_dict(finished.state_dict())  # what BaseModel.resume_training does
    for _ in range(2):
        extended.step()
    with pytest.raises(TypeError, match='NoneType'):
        extended.step()
