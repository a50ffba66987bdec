"""Faults, walked through every command but train/test: one table, one row per (command,
fault). The train/test rows are in tests/test_fault_injection_training.py.

Faults: Ctrl-C once the command is working (SIGINT to its process group, as a terminal
sends it), kill -9, a full disk (RLIMIT_FSIZE, SIGXFSZ ignored: writes fail with EFBIG),
an output that is (or overlaps) an input, an output that holds files the command did not
write (with --overwrite where the command has it), and a YAML tag that would run code.

Every row asserts the exit status, the one ``error:`` line (what it names), and the files
on disk: nothing that was there before is changed or gone, and every file the command
left under a final name is whole (decodes completely). Inputs are tiny (SGENet at widths
8/12/16, 64x64 images), so the table runs in well under a minute of CPU.
"""
import json
import os
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY
from PIL import Image

from conftest import REPO_ROOT
from faults import (INTERRUPTED_STATUS, FaultRunner, assert_one_error_line, changed_entries, snapshot,
                    wait_until)
from tiny_datasets import make_gopro_tree, make_hide_tree, read_lmdb
from tiny_experiment import TINY_SGENET

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='process groups, /proc, RLIMIT_FSIZE')

TINY_JSON = json.dumps({key: value for key, value in TINY_SGENET.items() if key != 'type'})
DEBLUR = ['-m', 'basicsr_sgenet.deblur']
EXPORT = ['-m', 'basicsr_sgenet.export']
COMPARE = [os.path.join(REPO_ROOT, 'scripts', 'compare.py')]
BENCHMARK = [os.path.join(REPO_ROOT, 'scripts', 'benchmark.py')]
PREPARE_GOPRO = [os.path.join(REPO_ROOT, 'scripts', 'prepare_gopro.py')]
PREPARE_HIDE = [os.path.join(REPO_ROOT, 'scripts', 'prepare_hide.py')]
STUDY = [os.path.join(REPO_ROOT, 'scripts', 'study.py')]
FULL_DISK_BYTES = 4096  # every file the commands write here is larger; their messages are not
YAML_TAG = '!!python/object/apply:os.system ["touch {ws}/PWNED"]'
IGNORED = ('lock.mdb',)  # LMDB readers touch it


# ----------------------------------------------------------------------------- inputs

@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp('fault_inputs')
    torch.manual_seed(0)
    network = ARCH_REGISTRY.get('SGENet')(**json.loads(TINY_JSON))
    torch.save({'params': network.state_dict()}, str(root / 'sgenet.pth'))
    rng = np.random.default_rng(0)
    (root / 'photos').mkdir()
    for index in range(40):  # enough work to be interrupted in the middle
        cv2.imwrite(str(root / 'photos' / f'{index:03d}.png'), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    frames = tuple(f'{index:06d}' for index in range(1, 7))
    make_gopro_tree(str(root / 'GOPRO_Large'), frames=frames)
    make_hide_tree(str(root / 'HIDE_dataset'), names={'test-close-ups': tuple(f'{i}fromGOPR0950' for i in range(40)),
                                                      'test-long-shot': ('3fromGOPR1000',)})
    return root


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    runner = FaultRunner(str(tmp_path_factory.mktemp('fault_runner')))
    yield runner
    runner.close()


class Workspace:
    def __init__(self, root, shared):
        self.root, self.shared = str(root), shared
        os.makedirs(self.root)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def copy(self, name):
        if not os.path.exists(self.path(name)):
            source = os.path.join(self.shared, name)
            (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, self.path(name))
        return self.path(name)

    def file(self, name, content):
        os.makedirs(os.path.dirname(self.path(name)), exist_ok=True)
        with open(self.path(name), 'wb' if isinstance(content, bytes) else 'w') as f:
            f.write(content)
        return self.path(name)

    def yaml_file(self, name, value):
        return self.file(name, yaml.safe_dump(value, sort_keys=False))

    def tagged_yaml(self, name, text=''):
        return self.file(name, f'name: x\nnetwork_g:\n  type: SGENet\n  oops: {YAML_TAG.format(ws=self.root)}\n{text}')


# ----------------------------------------------------------------------------- whole files

def assert_whole(path):
    """The file under this final name is complete: it decodes to the end."""
    name = os.path.basename(path)
    extension = os.path.splitext(name)[1].lower()
    if extension in ('.png', '.jpg', '.tif', '.tiff'):
        with Image.open(path) as image:
            image.load()  # raises on a truncated file
        assert cv2.imread(path, cv2.IMREAD_UNCHANGED) is not None, path
    elif extension == '.onnx':
        import onnx
        onnx.checker.check_model(onnx.load(path))
    elif extension == '.json':
        with open(path) as f:
            json.load(f)
    elif extension in ('.md', '.yml', '.txt', '.log'):
        assert os.path.getsize(path) > 0, path
    elif name == 'data.mdb':
        read_lmdb(os.path.dirname(path))


def temporary(name):
    return name.startswith(('.incomplete-', '.replaced-', '.export-')) or '.tmp' in name or name.endswith('.partial')


def assert_files_safe(ws, before, allow_temporary=False):
    """Nothing that was there changed or vanished; every new file under a final name is whole."""
    after = snapshot(ws.root)
    changed = [path for path in changed_entries(before, after) if os.path.basename(path) not in IGNORED]
    assert not changed, f'changed or removed: {changed}'
    for relative in sorted(set(after) - set(before)):
        parts = relative.split(os.sep)
        if any(temporary(part) for part in parts):
            assert allow_temporary, f'left a temporary file: {relative}'
            continue
        if after[relative] != 'folder':
            assert_whole(ws.path(relative))
    assert not os.path.exists(ws.path('PWNED'))


# ----------------------------------------------------------------------------- commands


class Command:
    """How to run one command on a workspace for the fault rows."""
    name = ''
    argv = []

    def arguments(self, ws):
        """A run with enough work to be interrupted in the middle."""
        raise NotImplementedError

    def working(self, ws, child):
        """A condition that is true once the command is working (by default: once it has
        used half a second of CPU time after the fork)."""
        return lambda: cpu_seconds(child.pid) > 0.5

    full_disk_names = '{ws}'  # what the full-disk error line must name

    def full_disk(self, ws):
        return self.arguments(ws)

    yaml_tag_names = '{ws}/opt.yml'
    output_is_input = None   # ws -> arguments whose output is (or overlaps) an input
    output_is_input_names = ''
    foreign_output = None    # ws -> arguments whose output holds a file the command did not write
    foreign_output_names = ''
    yaml_tag = None          # ws -> arguments reading a YAML file with a code-running tag


def cpu_seconds(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')  # utime + stime


def _any_file(folder, extension=''):
    return lambda: os.path.isdir(folder) and any(
        name.endswith(extension) and not name.startswith('.') for name in os.listdir(folder))


class Deblur(Command):
    name, argv = 'deblur', DEBLUR

    def arguments(self, ws):
        return ['-i', ws.copy('photos'), '-o', ws.path('out'), '--weights', ws.copy('sgenet.pth'),
                '--arch-args', TINY_JSON, '--device', 'cpu', '--quiet']

    def working(self, ws, child):
        return _any_file(ws.path('out'), '.png')

    full_disk_names = '{ws}/out/'

    def output_is_input(self, ws):
        return self.arguments(ws)[:2] + ['-o', ws.path('photos', 'deblurred')] + self.arguments(ws)[4:]
    output_is_input_names = '{ws}/photos'

    def foreign_output(self, ws):
        ws.file('out/000.png', b'my own picture')
        return self.arguments(ws) + ['--overwrite']
    foreign_output_names = '{ws}/out/000.png'

    def yaml_tag(self, ws):
        return self.arguments(ws)[:4] + ['--opt', ws.tagged_yaml('opt.yml'), '--weights', ws.copy('sgenet.pth')]


class Export(Command):
    name, argv = 'export', EXPORT

    def arguments(self, ws):
        os.makedirs(ws.path('out'), exist_ok=True)
        return ['--weights', ws.copy('sgenet.pth'), '--arch-args', TINY_JSON, '-o', ws.path('out', 'net.onnx')]

    def working(self, ws, child):
        return lambda: os.path.isdir(ws.path('out')) and any(n.startswith('.export-') for n in os.listdir(ws.path('out')))

    full_disk_names = '{ws}/out/net.onnx'

    def output_is_input(self, ws):
        return ['--weights', ws.copy('sgenet.pth'), '--arch-args', TINY_JSON, '-o', ws.path('sgenet.pth'),
                '--overwrite']
    output_is_input_names = '{ws}/sgenet.pth'

    def foreign_output(self, ws):
        ws.file('out/net.onnx', b'my notes')
        return self.arguments(ws) + ['--overwrite']
    foreign_output_names = '{ws}/out/net.onnx'

    def yaml_tag(self, ws):
        return ['--opt', ws.tagged_yaml('opt.yml'), '--weights', ws.copy('sgenet.pth'), '-o', ws.path('a.onnx')]


class PrepareGoPro(Command):
    name, argv = 'prepare_gopro', PREPARE_GOPRO
    grid = ['--crop-size', '8', '--step', '2', '--workers', '1', '--compress-level', '9']

    def arguments(self, ws):
        return ['--input', ws.copy('GOPRO_Large'), '--output', ws.path('GoPro'), *self.grid]

    def working(self, ws, child):
        return lambda: os.path.isdir(ws.path('GoPro', '.incomplete-train'))

    full_disk_names = '{ws}/GoPro/train'

    def output_is_input(self, ws):
        return ['--input', ws.copy('GOPRO_Large'), '--output', ws.path('GOPRO_Large'), '--overwrite', *self.grid]
    output_is_input_names = '{ws}/GOPRO_Large'

    def foreign_output(self, ws):
        ws.file('GoPro/test/notes.txt', 'mine')
        return self.arguments(ws) + ['--overwrite']
    foreign_output_names = '{ws}/GoPro/test'


class PrepareHide(Command):
    name, argv = 'prepare_hide', PREPARE_HIDE
    settings = ['--workers', '1', '--compress-level', '9']

    def arguments(self, ws):
        return ['--input', ws.copy('HIDE_dataset'), '--output', ws.path('HIDE'), *self.settings]

    def working(self, ws, child):
        return lambda: os.path.isdir(ws.path('HIDE', '.incomplete-test'))

    full_disk_names = '{ws}/HIDE/test'

    def output_is_input(self, ws):
        return ['--input', ws.copy('HIDE_dataset'), '--output', ws.path('HIDE_dataset'), '--overwrite',
                *self.settings]
    output_is_input_names = '{ws}/HIDE_dataset'

    def foreign_output(self, ws):
        ws.file('HIDE/test/notes.txt', 'mine')
        return self.arguments(ws) + ['--overwrite']
    foreign_output_names = '{ws}/HIDE/test'


def study_dict(iters):
    return {
        'name': 'faults', 'base': os.path.join(REPO_ROOT, 'options', 'train_SGENet_GoPro.yml'), 'seeds': [0],
        'budget': {'iters': iters, 'val_every': iters, 'print_every': 1},
        'data': {'synthetic': {'train_photos': ['astronaut'], 'test_photos': ['chelsea'],
                               'train_frames_per_photo': 1, 'test_frames_per_photo': 1,
                               'train_frame_size': [48, 64], 'test_frame_size': [40, 48]},
                 'grid': {'crop_size': 32, 'step': 16}},
        'overrides': {'network_g.channels': [8, 8, 8], 'network_g.num_rdm': 1, 'datasets.train.gt_size': 16,
                      'datasets.train.total_batch_size': 2, 'datasets.train.num_worker_per_gpu': 0,
                      'train.warmup_iter': -1, 'val.metrics.psnr_matlab': None, 'val.metrics.ssim_matlab': None,
                      'logger.use_tb_logger': False, 'dist_params': None},
        'variants': [{'name': 'full'}],
    }


class Study(Command):
    name, argv = 'study', STUDY

    def arguments(self, ws):
        return [ws.yaml_file('faults.yml', study_dict(2000)), '--out', ws.path('out')]

    def working(self, ws, child):
        log = ws.path('out', 'runs', 'full', 'seed0', 'console.log')
        return lambda: os.path.isfile(log) and 'iter:' in open(log).read()

    full_disk_names = '{ws}/out'

    def output_is_input(self, ws):
        return [ws.yaml_file('studies/faults.yml', study_dict(2)), '--out', ws.path('studies')]
    output_is_input_names = '{ws}/studies'

    def foreign_output(self, ws):
        ws.file('out/results.md', '# my own results\n')
        return self.arguments(ws)
    foreign_output_names = '{ws}/out/results.md'

    yaml_tag_names = '{ws}/faults.yml'

    def yaml_tag(self, ws):
        return [ws.file('faults.yml', f'name: faults\nbase: {YAML_TAG.format(ws=ws.root)}\n'), '--out',
                ws.path('out')]


def finished_experiment(ws):
    """results/tiny with a test log that compare can read."""
    log = ('2024-01-01 00:00:00,000 INFO: Validation tiny\n'
           '\t # psnr: 30.0000\tBest: 30.0000 @ 0 iter\n')
    ws.file('results/tiny/test_tiny_20240101_000000.log', log)
    ws.yaml_file('results/tiny/test.yml', {'name': 'tiny', 'network_g': dict(TINY_SGENET)})
    return ws.path('results', 'tiny')


class Compare(Command):
    name, argv = 'compare', COMPARE

    def arguments(self, ws):
        os.makedirs(ws.path('table'), exist_ok=True)
        return [finished_experiment(ws), '--latency', '--device', 'cpu', '--size', '64x64', '--repeats', '400',
                '--out', ws.path('table', 'compare.md')]

    full_disk_names = '{ws}/table/compare.png'

    def full_disk(self, ws):
        os.makedirs(ws.path('table'), exist_ok=True)
        return [finished_experiment(ws), '--size', '64x64', '--out', ws.path('table', 'compare.md'),
                '--plot', ws.path('table', 'compare.png')]

    def output_is_input(self, ws):
        return [finished_experiment(ws), '--no-cost', '--out', ws.path('results', 'tiny', 'test.yml')]
    output_is_input_names = '{ws}/results/tiny'

    def foreign_output(self, ws):
        ws.file('table/compare.md', 'my own table\n')
        return [finished_experiment(ws), '--no-cost', '--out', ws.path('table', 'compare.md')]
    foreign_output_names = '{ws}/table/compare.md'

    def yaml_tag(self, ws):
        return [ws.tagged_yaml('opt.yml'), '--no-cost']


class Benchmark(Command):
    name, argv = 'benchmark', BENCHMARK

    def arguments(self, ws):
        os.makedirs(ws.path('table'), exist_ok=True)
        return ['--model', f'SGENet:{TINY_JSON}', '--sizes', '64x64', '--precisions', 'fp32', '--device', 'cpu',
                '--repeats', '400', '--out', ws.path('table', 'bench.md')]

    full_disk_names = '{ws}/table/bench.png'

    def full_disk(self, ws):
        os.makedirs(ws.path('table'), exist_ok=True)
        return ['--model', f'SGENet:{TINY_JSON}', '--sizes', '64x64', '--precisions', 'fp32', '--device', 'cpu',
                '--repeats', '1', '--warmup', '0', '--out', ws.path('table', 'bench.md')]

    def output_is_input(self, ws):
        return ['--model', f'SGENet:{TINY_JSON}', '--weights', ws.copy('sgenet.pth'), '--macs-only', '--sizes',
                '64x64', '--out', ws.path('sgenet.pth')]
    output_is_input_names = '{ws}/sgenet.pth'

    def foreign_output(self, ws):
        ws.file('table/bench.md', 'my own table\n')
        return ['--model', f'SGENet:{TINY_JSON}', '--macs-only', '--sizes', '64x64', '--out', ws.path('table', 'bench.md')]
    foreign_output_names = '{ws}/table/bench.md'

    def yaml_tag(self, ws):
        return ['--opt', ws.tagged_yaml('opt.yml'), '--macs-only', '--sizes', '64x64']


COMMANDS = [Deblur(), Export(), PrepareGoPro(), PrepareHide(), Study(), Compare(), Benchmark()]


# ----------------------------------------------------------------------------- the table

FAULTS = ['ctrl_c', 'kill_9', 'full_disk', 'output_is_input', 'foreign_output', 'yaml_tag']
ROWS = [(command, fault) for command in COMMANDS for fault in FAULTS
        if fault not in ('output_is_input', 'foreign_output', 'yaml_tag') or getattr(command, fault) is not None]


@pytest.mark.parametrize('command,fault', ROWS, ids=[f'{command.name}: {fault}' for command, fault in ROWS])
def test_fault(command, fault, runner, shared, tmp_path):
    ws = Workspace(tmp_path / 'ws', str(shared))
    if fault in ('ctrl_c', 'kill_9'):
        arguments = command.arguments(ws)
        before = snapshot(ws.root)
        child = runner.start(command.argv + arguments, ws.root)
        wait_until(command.working(ws, child), child)
        if fault == 'ctrl_c':
            child.interrupt()
        else:
            child.kill()
        status = child.wait()
        stdout, stderr = child.output()
        if fault == 'ctrl_c':
            assert status == INTERRUPTED_STATUS, (status, stderr)
            assert_one_error_line(stderr, 'interrupted (Ctrl-C)')
            assert_files_safe(ws, before)
        else:
            assert status == -9, (status, stderr)
            assert_files_safe(ws, before, allow_temporary=True)
        return
    if fault == 'full_disk':
        arguments = command.full_disk(ws)
        before = snapshot(ws.root)
        status, stdout, stderr = runner.run(command.argv + arguments, ws.root, file_size_limit=FULL_DISK_BYTES)
        assert status != 0, (status, stdout, stderr)
        assert_one_error_line(stderr, command.full_disk_names.format(ws=ws.root))
        assert status == 2, (status, stderr)
        assert_files_safe(ws, before)
        return
    arguments = getattr(command, fault)(ws)
    before = snapshot(ws.root)
    status, stdout, stderr = runner.run(command.argv + arguments, ws.root)
    names = {'output_is_input': command.output_is_input_names, 'foreign_output': command.foreign_output_names,
             'yaml_tag': command.yaml_tag_names}[fault]
    assert_one_error_line(stderr, names.format(ws=ws.root))
    assert status == 2, (status, stderr)
    assert snapshot(ws.root) == before, 'the command wrote or changed files'
    assert not os.path.exists(ws.path('PWNED'))


# ----------------------------------------------------------------------------- the one place

def test_ctrl_c_is_one_line_and_status_130_in_every_main(capsys):
    from basicsr_sgenet.integration.errors import Interrupted, exit_on_user_error, status_or_user_error

    def interrupted():
        raise KeyboardInterrupt

    def interrupted_with_detail():
        raise Interrupted('3 of 9 results written') from None

    assert status_or_user_error(interrupted) == INTERRUPTED_STATUS
    assert capsys.readouterr().err.splitlines() == [
        'error: interrupted (Ctrl-C); nothing half-written was left (every file takes its name only when complete)']
    assert status_or_user_error(interrupted_with_detail) == INTERRUPTED_STATUS
    assert capsys.readouterr().err == 'error: interrupted (Ctrl-C); 3 of 9 results written\n'
    with pytest.raises(SystemExit) as exit_request:
        exit_on_user_error(interrupted)
    assert exit_request.value.code == INTERRUPTED_STATUS
    assert exit_on_user_error(lambda: 'result') == 'result'
