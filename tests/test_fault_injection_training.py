"""Faults in train and test (BasicSR's pipelines through the plugin's entry points): the
train/test rows of the fault-injection table (tests/test_fault_injection.py has the other
commands). Faults: Ctrl-C once the run is working, kill -9, a full disk (RLIMIT_FSIZE,
SIGXFSZ ignored), a YAML tag that would run code, an output folder holding another run's
files, an output that holds an input.

Every row asserts the exit status, the one ``error:`` line and the files on disk: nothing
that was there before changed or vanished (an earlier run's folder is archived whole), no
temporary file is left (but after kill -9), and every checkpoint, state and image under a
final name is whole. Tiny SGENet (widths 8/12/16), 40x40 training pairs, a few iterations.
"""
import os
import sys

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from PIL import Image

from basicsr_sgenet.integration import safe_yaml
from faults import INTERRUPTED_STATUS, FaultRunner, assert_one_error_line, changed_entries, snapshot, wait_until
from tiny_experiment import TINY_SGENET, training_options, write_options, write_pairs

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='process groups, /proc, RLIMIT_FSIZE')

TRAIN = ['-m', 'basicsr_sgenet.train']
TEST = ['-m', 'basicsr_sgenet.test']
TAG = '!!python/object/apply:os.mkdir ["{ws}/PWNED"]'
# Larger than the run's log and option copy, smaller than a checkpoint of the tiny SGENet
# (about 500 KB) and than a 128x128 noise PNG (about 49 KB).
FULL_DISK_BYTES = 40_000


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    runner = FaultRunner(str(tmp_path_factory.mktemp('training_fault_runner')))
    yield runner
    runner.close()


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    torch.manual_seed(0)
    network = ARCH_REGISTRY.get('SGENet')(**{key: value for key, value in TINY_SGENET.items() if key != 'type'})
    path = tmp_path_factory.mktemp('training_fault_weights') / 'sgenet.pth'
    torch.save({'params': network.state_dict()}, path)
    return str(path)


class Workspace:
    """The run's current directory, holding its data (so a changed input shows)."""

    def __init__(self, root, weights):
        self.root, self.weights = str(root), weights
        os.makedirs(self.root)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def pairs(self, folder='pairs', count=4, size=40):
        from pathlib import Path
        if not os.path.exists(self.path(folder)):
            write_pairs(Path(self.path(folder)), count=count, size=size)
        return self.path(folder)

    def train_options(self, total_iter=4, data=None, name='run'):
        from pathlib import Path
        opt = training_options(Path(data or self.pairs()), name, total_iter=total_iter, checkpoint_every=2,
                               validate=False)
        return str(write_options(Path(self.path('train.yml')), opt))

    def noise_pairs(self, count, size):
        """Pairs of noise images, which PNG cannot compress (about 3 bytes a pixel)."""
        rng = np.random.default_rng(0)
        for side in ('sharp', 'blur'):
            os.makedirs(self.path('noise', side))
            for index in range(count):
                image = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
                assert cv2.imwrite(self.path('noise', side, f'{index:04d}.png'), image)
        return self.path('noise')

    def test_options(self, data=None, count=4, size=40):
        from pathlib import Path
        data = data or self.noise_pairs(count, size)
        opt = {'name': 'run', 'model_type': 'DeblurModel', 'num_gpu': 0, 'scale': 1,
               'datasets': {'test_1': {'name': 'pairs', 'type': 'PairedImageDataset',
                                       'dataroot_gt': os.path.join(data, 'sharp'),
                                       'dataroot_lq': os.path.join(data, 'blur'), 'io_backend': {'type': 'disk'}}},
               'network_g': dict(TINY_SGENET),
               'path': {'pretrain_network_g': self.weights, 'strict_load_g': True},
               'val': {'save_img': True, 'suffix': None,
                       'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}}}
        return str(write_options(Path(self.path('test.yml')), opt))

    def tagged(self, name):
        path = self.path(name)
        with open(path, 'w') as f:
            f.write(f'name: run\nmodel_type: DeblurModel\nnetwork_g: {TAG.format(ws=self.root)}\n')
        return path

    def earlier_run(self, folder):
        """An earlier run's folder, with a user's notes in it."""
        for relative, content in (('models/net_g_9.pth', b'earlier weights'), ('notes.txt', b'my notes')):
            os.makedirs(os.path.dirname(self.path(folder, relative)), exist_ok=True)
            with open(self.path(folder, relative), 'wb') as f:
                f.write(content)
        return self.path(folder)


def temporary(name):
    return '.tmp-' in name


def assert_whole(path):
    name = os.path.basename(path)
    extension = os.path.splitext(name)[1]
    if extension in ('.pth', '.state'):
        torch.load(path, map_location='cpu', weights_only=True)  # raises on a truncated file
    elif extension == '.png':
        with Image.open(path) as image:
            image.load()
        assert cv2.imread(path) is not None, path
    elif extension == '.yml':
        safe_yaml.load_file(path)


def assert_files_safe(ws, before, allow_temporary=False, moved=None):
    """Nothing that was there changed or vanished (``moved``: (old folder, new folder) of
    an archived earlier run, compared file by file); every new file under a final name is whole."""
    after = snapshot(ws.root)
    if moved:
        old, new = moved
        before = {path.replace(old, new, 1) if path.split(os.sep)[:2] == old.split(os.sep) else path: value
                  for path, value in before.items()}
    assert not changed_entries(before, after), f'changed or removed: {changed_entries(before, after)}'
    for relative in sorted(set(after) - set(before)):
        if any(temporary(part) for part in relative.split(os.sep)):
            assert allow_temporary, f'left a temporary file: {relative}'
            continue
        if after[relative] != 'folder':
            assert_whole(ws.path(relative))
    assert not os.path.exists(ws.path('PWNED'))


def archived(ws, folder):
    """The one <folder>_archived_<time> next to ``folder`` (relative to the workspace)."""
    parent, name = os.path.split(folder)
    found = [entry for entry in os.listdir(ws.path(parent)) if entry.startswith(f'{name}_archived_')]
    assert len(found) == 1, found
    return os.path.join(parent, found[0])


# ----------------------------------------------------------------------------- train


def test_train_ctrl_c(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    options = ws.train_options(total_iter=100_000)
    before = snapshot(ws.root)
    child = runner.start(TRAIN + ['-opt', options], ws.root)
    wait_until(lambda: os.path.exists(ws.path('experiments/run/models/net_g_2.pth')), child)
    child.interrupt()
    status = child.wait()
    _, stderr = child.output()
    assert status == INTERRUPTED_STATUS, (status, stderr)
    assert_one_error_line(stderr, 'interrupted (Ctrl-C); every checkpoint and training state saved so far is complete')
    assert_files_safe(ws, before)


def test_train_kill_9(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    options = ws.train_options(total_iter=100_000)
    before = snapshot(ws.root)
    child = runner.start(TRAIN + ['-opt', options], ws.root)
    wait_until(lambda: os.path.exists(ws.path('experiments/run/training_states/4.state')), child)
    child.kill()
    assert child.wait() == -9
    assert_files_safe(ws, before, allow_temporary=True)


def test_train_full_disk(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    options = ws.train_options(total_iter=4)
    before = snapshot(ws.root)
    status, _, stderr = runner.run(TRAIN + ['-opt', options], ws.root, file_size_limit=FULL_DISK_BYTES)
    assert_one_error_line(stderr, f'cannot write the checkpoint {ws.root}/experiments/run/models/net_g_2.pth: '
                                  'File too large')
    assert status == 2, (status, stderr)
    assert_files_safe(ws, before)


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full')
def test_a_failed_log_write_stops_the_run(fresh_basicsr_logger, capsys):
    """The log file on a full disk (/dev/full: every write fails with ENOSPC). Not a row
    of the table: the child's own stderr would hit RLIMIT_FSIZE with its log."""
    import logging

    from basicsr.utils.logger import get_root_logger

    from basicsr_sgenet.integration import patches
    from basicsr_sgenet.integration.errors import WriteError

    upstream = patches.UPSTREAM['logger_logging'].FileHandler('/dev/full', 'w')  # BasicSR's as it is
    upstream.setFormatter(logging.Formatter('%(message)s'))
    upstream.handle(logging.makeLogRecord({'msg': 'lost', 'levelno': logging.INFO}))
    assert '--- Logging error ---' in capsys.readouterr().err, 'the upstream problem: a warning, and it goes on'

    logger = get_root_logger(log_file='/dev/full')  # through the patched logging
    with pytest.raises(WriteError, match='cannot write the log /dev/full: No space left on device'):
        logger.info('lost')


@pytest.mark.parametrize('entry, name', [(TRAIN, 'train.yml'), (TEST, 'test.yml')], ids=['train', 'test'])
def test_yaml_tag(runner, weights, tmp_path, entry, name):
    ws = Workspace(tmp_path / 'ws', weights)
    options = ws.tagged(name)
    before = snapshot(ws.root)
    status, _, stderr = runner.run(entry + ['-opt', options], ws.root)
    assert_one_error_line(stderr, f'{options}, line 3: the tag !!python/object/apply:os.mkdir would run code')
    assert status == 2
    assert snapshot(ws.root) == before and not os.path.exists(ws.path('PWNED'))


def test_train_over_an_earlier_run_archives_it_whole(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    ws.earlier_run('experiments/run')
    options = ws.train_options(total_iter=2)
    before = snapshot(ws.root)
    status, _, stderr = runner.run(TRAIN + ['-opt', options], ws.root)
    assert status == 0, stderr[-3000:]
    assert_files_safe(ws, before, moved=('experiments/run', archived(ws, 'experiments/run')))
    assert os.path.isfile(ws.path('experiments/run/models/net_g_latest.pth'))


def test_train_data_inside_the_folder_it_would_archive(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    earlier = ws.earlier_run('experiments/run')
    options = ws.train_options(data=ws.pairs(os.path.join(earlier, 'pairs')))
    before = snapshot(ws.root)
    status, _, stderr = runner.run(TRAIN + ['-opt', options], ws.root)
    assert_one_error_line(stderr, f'datasets.train.dataroot_gt ({earlier}/pairs/sharp) is inside {earlier}')
    assert status == 2
    assert snapshot(ws.root) == before


# ----------------------------------------------------------------------------- test


def test_test_ctrl_c(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    options = ws.test_options(count=300, size=64)
    before = snapshot(ws.root)
    child = runner.start(TEST + ['-opt', options], ws.root)
    images = ws.path('results/run/visualization/pairs')
    wait_until(lambda: os.path.isdir(images) and len(os.listdir(images)) >= 2, child)
    child.interrupt()
    status = child.wait()
    _, stderr = child.output()
    assert status == INTERRUPTED_STATUS, (status, stderr)
    assert_one_error_line(stderr, 'interrupted (Ctrl-C); the images and log written so far are complete')
    assert_files_safe(ws, before)


def test_test_kill_9(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    options = ws.test_options(count=300, size=64)
    before = snapshot(ws.root)
    child = runner.start(TEST + ['-opt', options], ws.root)
    images = ws.path('results/run/visualization/pairs')
    wait_until(lambda: os.path.isdir(images) and len(os.listdir(images)) >= 2, child)
    child.kill()
    assert child.wait() == -9
    assert_files_safe(ws, before, allow_temporary=True)


def test_test_full_disk(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    options = ws.test_options(count=2, size=128)
    before = snapshot(ws.root)
    status, _, stderr = runner.run(TEST + ['-opt', options], ws.root, file_size_limit=FULL_DISK_BYTES)
    line = assert_one_error_line(stderr, f'cannot write the image {ws.root}/results/run/visualization/pairs/',
                                 '.png: File too large')
    assert status == 2, (status, stderr)
    assert_files_safe(ws, before)
    image = line.split('cannot write the image ', 1)[1].split(': File too large', 1)[0]
    assert not os.path.exists(image), 'a truncated image under its final name'



def test_test_over_earlier_results_archives_them_whole(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    ws.earlier_run('results/run')
    options = ws.test_options()
    before = snapshot(ws.root)
    status, _, stderr = runner.run(TEST + ['-opt', options], ws.root)
    assert status == 0, stderr[-3000:]
    assert_files_safe(ws, before, moved=('results/run', archived(ws, 'results/run')))


def test_test_data_inside_the_results_it_would_archive(runner, weights, tmp_path):
    ws = Workspace(tmp_path / 'ws', weights)
    earlier = ws.earlier_run('results/run')
    options = ws.test_options(data=ws.pairs(os.path.join(earlier, 'pairs')))
    before = snapshot(ws.root)
    status, _, stderr = runner.run(TEST + ['-opt', options], ws.root)
    assert_one_error_line(stderr, f'datasets.test_1.dataroot_gt ({earlier}/pairs/sharp) is inside {earlier}')
    assert status == 2
    assert snapshot(ws.root) == before
