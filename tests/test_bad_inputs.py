"""Bad input, walked through every entry point: one table, one row per mistake.

Every row runs the entry point as a child process and asserts what a user must get:
exit status 2, exactly one ``error:`` line that names the file, key or argument, no
traceback, and nothing written (no file or folder appears or changes in the workspace,
which is also the current directory, where BasicSR's entry points write).

A new entry point joins by adding its command to ENTRY_POINTS and its rows to ROWS.
Children are forked from one interpreter that has already imported torch and BasicSR
(``tests/entry_point_runner.py``), so a row costs a fraction of a second instead of 4 s of
imports; ``SGENET_FRESH_PROCESSES=1`` runs each row as a fresh ``python`` instead.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_sgenet.data.preparation import SubimageGrid, prepare_gopro, prepare_hide
from basicsr_sgenet.integration.options import with_overrides
from conftest import REPO_ROOT, python_env
from tiny_datasets import REALBLUR_FOLDERS, make_gopro_tree, make_hide_tree, make_realblur_tree, make_rsblur_tree
from tiny_experiment import TINY_SGENET, training_options, write_options, write_pairs

ENTRY_POINTS = {
    'deblur': ['-m', 'basicsr_sgenet.deblur'],
    'prepare_gopro': [os.path.join(REPO_ROOT, 'scripts', 'prepare_gopro.py')],
    'prepare_hide': [os.path.join(REPO_ROOT, 'scripts', 'prepare_hide.py')],
    'prepare_realblur': [os.path.join(REPO_ROOT, 'scripts', 'prepare_realblur.py')],
    'prepare_rsblur': [os.path.join(REPO_ROOT, 'scripts', 'prepare_rsblur.py')],
    'train': ['-m', 'basicsr_sgenet.train'],
    'test': ['-m', 'basicsr_sgenet.test'],
    'export': ['-m', 'basicsr_sgenet.export'],
    'study': [os.path.join(REPO_ROOT, 'scripts', 'study.py')],
}
FRESH_PROCESSES = os.environ.get('SGENET_FRESH_PROCESSES') == '1'
TINY_SGENET_JSON = json.dumps({key: value for key, value in TINY_SGENET.items() if key != 'type'})
GOPRO_GRID = ['--crop-size', '24', '--step', '12', '--workers', '1']
LINUX = sys.platform.startswith('linux')


# ----------------------------------------------------------------------------- workspace

@dataclass
class Workspace:
    """The folder a row runs in (by default also its current directory, ``cwd``), with
    builders for the inputs the rows break. ``deny_write``: folders the child must see
    as not writable."""
    root: str
    shared: dict
    cwd: str = None
    deny_write: list = field(default_factory=list)

    def __post_init__(self):
        self.cwd = self.cwd or self.root

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def file(self, name, content=b''):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(content)
        return path

    def image(self, name, size=(24, 32)):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rng = np.random.default_rng(len(name))
        assert cv2.imwrite(path, rng.integers(0, 255, size=(*size, 3), dtype=np.uint8))
        return path

    def read_only_folder(self, name):
        """A folder without write permission (for root, who may write there anyway, the
        child's os.access says no, as it would for any other user)."""
        path = self.path(name)
        os.makedirs(path)
        os.chmod(path, 0o555)
        self.deny_write.append(path)
        return path

    @property
    def weights(self):
        return self.shared['weights']

    def gopro_source(self):
        return self._copy('GOPRO_Large', 'gopro_source')

    def hide_source(self):
        return self._copy('HIDE_dataset', 'hide_source')

    def realblur_source(self):
        return self._copy('RealBlur', 'realblur_source')

    def rsblur_source(self):
        return self._copy('RSBlurData', 'rsblur_source')

    def prepared_gopro(self):
        return self._copy('GoPro', 'prepared_gopro')

    def prepared_hide(self):
        return self._copy('HIDE', 'prepared_hide')

    def _copy(self, name, key):
        if not os.path.exists(self.path(name)):
            shutil.copytree(self.shared[key], self.path(name))
        return self.path(name)

    def training_data(self):
        if not os.path.exists(self.path('pairs')):
            write_pairs(Path(self.path('pairs')), count=2, size=40)
        return self.path('pairs')

    def train_options(self, overrides=None):
        opt = training_options(Path(self.training_data()), 'bad', total_iter=2, checkpoint_every=2, validate=False)
        return str(write_options(Path(self.path('train.yml')), with_overrides(opt, overrides)))

    def test_options(self, overrides=None):
        data = self.training_data()
        opt = {'name': 'bad', 'model_type': 'DeblurModel', 'num_gpu': 0, 'scale': 1,
               'datasets': {'test_1': {'name': 'pairs', 'type': 'PairedImageDataset',
                                       'dataroot_gt': os.path.join(data, 'sharp'),
                                       'dataroot_lq': os.path.join(data, 'blur'), 'io_backend': {'type': 'disk'}}},
               'network_g': dict(TINY_SGENET),
               'path': {'pretrain_network_g': self.weights, 'strict_load_g': True},
               'val': {'save_img': False,
                       'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}}}
        return str(write_options(Path(self.path('test.yml')), with_overrides(opt, overrides)))


def truncate(path, size):
    """Cut ``path`` to ``size`` bytes (a callable size gets the current size)."""
    os.truncate(path, size(os.path.getsize(path)) if callable(size) else size)
    return path


def half(size):
    return size // 2


# ----------------------------------------------------------------------------- the table

@dataclass
class Row:
    entry: str
    case: str
    arguments: object  # Workspace -> the entry point's arguments (building the bad input on the way)
    names: str  # what the error line must contain; {ws} is the workspace
    linux_only: bool = False
    cpu_only: bool = False  # the mistake is one only where there is no CUDA


def deblur(ws, *args):
    return ['--device', 'cpu', '--quiet', '--weights', ws.weights, '--arch-args', TINY_SGENET_JSON,
            *[str(arg) for arg in args]]


def deblur_with_user_file(ws):
    # -i photos/a.jpg -o photos: the result a.png would replace the user's own photos/a.png.
    ws.image('photos/a.png')
    return deblur(ws, '-i', ws.image('photos/a.jpg'), '-o', ws.path('photos'))


def deblur_over_earlier_result(ws):
    ws.image('out/a.png')  # a result of an earlier run (or anything else named a.png)
    return deblur(ws, '-i', ws.image('new/a.png'), '-o', ws.path('out'))


def deblur_two_to_one_name(ws):
    ws.image('in/a.jpg')
    ws.image('in/a.png')
    return deblur(ws, '-i', ws.path('in'), '-o', ws.path('out'))



def export(ws, *args):
    return ['--weights', ws.weights, '--arch-args', TINY_SGENET_JSON, *[str(arg) for arg in args]]


def study_file(ws, text):
    """A study file over the GoPro recipe (absolute base path) plus ``text``."""
    base = os.path.join(REPO_ROOT, 'options', 'train_SGENet_GoPro.yml')
    return ws.file('study.yml', (f'name: bad\nbase: {base}\nseeds: [0]\nbudget: {{iters: 2}}\n' + text).encode())

def gopro(ws, *args, source=None):
    return ['--input', source or ws.gopro_source(), *GOPRO_GRID, *[str(arg) for arg in args]]


def gopro_with_damaged_split(ws, size):
    output = ws.prepared_gopro()
    truncate(os.path.join(output, 'train', 'blur.lmdb', 'data.mdb'), size)
    return gopro(ws, '--output', output)


def gopro_with_scrambled_page(ws):
    # The right size (the header check passes) but a page header that sends LMDB past the
    # end of the file: reading it in the preparing process would end it with SIGBUS.
    output = ws.prepared_gopro()
    with open(os.path.join(output, 'train', 'blur.lmdb', 'data.mdb'), 'r+b') as f:
        f.seek(os.fstat(f.fileno()).st_size - 4096 + 16)
        f.write(b'\xff' * 16)
    return gopro(ws, '--output', output)


def hide(ws, *args):
    return ['--input', ws.hide_source(), '--workers', '1', *[str(arg) for arg in args]]


def gopro_without(ws, relative_path):
    os.remove(os.path.join(ws.gopro_source(), relative_path))
    return gopro(ws)


def gopro_with_truncated(ws, relative_path):
    truncate(os.path.join(ws.gopro_source(), relative_path), half)
    return gopro(ws)


def gopro_over_foreign_folder(ws):
    ws.file('GoPro/test/notes.txt', b'mine')
    return gopro(ws, '--output', ws.path('GoPro'))


def realblur(ws, *args):
    return ['--input', ws.realblur_source(), '--workers', '1', *[str(arg) for arg in args]]


def realblur_without(ws, relative_path):
    os.remove(os.path.join(ws.realblur_source(), relative_path))
    return realblur(ws)


def rsblur(ws, *args):
    source = ws.rsblur_source()
    return ['--input', source, '--lists', os.path.join(source, 'lists'), '--workers', '1', *[str(a) for a in args]]


def rsblur_with_truncated(ws, relative_path):
    truncate(os.path.join(ws.rsblur_source(), relative_path), half)
    return rsblur(ws)


def rsblur_with_list_line(ws, line):
    arguments = rsblur(ws)
    with open(os.path.join(ws.rsblur_source(), 'lists', 'RSBlur_real_val.txt'), 'a') as f:
        f.write(line + '\n')
    return arguments


def hide_without(ws, relative_path):
    os.remove(os.path.join(ws.hide_source(), relative_path))
    return hide(ws)


def hide_with_damaged_output(ws):
    truncate(os.path.join(ws.prepared_hide(), 'test', 'sharp.lmdb', 'data.mdb'), 12 * 1024)
    return hide(ws, '--output', ws.prepared_hide())


def truncated_copy(ws, name, source_or_object):
    """A copy of a weights file, or of ``torch.save(object)``, cut to half its size."""
    path = ws.path(name)
    if isinstance(source_or_object, str):
        shutil.copy(source_or_object, path)
    else:
        torch.save(source_or_object, path)
    return truncate(path, half)


def run_in_read_only_folder(ws, options):
    ws.cwd = ws.read_only_folder('run')
    return ['-opt', options]


def lmdb_training_options(ws):
    lmdb_root = os.path.join(ws.prepared_gopro(), 'train')
    truncate(os.path.join(lmdb_root, 'sharp.lmdb', 'data.mdb'), 12 * 1024)
    return ['-opt', ws.train_options({'datasets.train.dataroot_gt': os.path.join(lmdb_root, 'sharp.lmdb'),
                                      'datasets.train.dataroot_lq': os.path.join(lmdb_root, 'blur.lmdb'),
                                      'datasets.train.io_backend': {'type': 'lmdb'}})]


ROWS = [
    # --- deblur: arguments and files checked before the network is built
    Row('deblur', 'input does not exist', lambda ws: deblur(ws, '-i', ws.path('nothing.png'), '-o', ws.path('out')),
        '{ws}/nothing.png'),
    Row('deblur', 'no -o', lambda ws: ['-i', ws.image('a.png')], '-o/--output'),
    Row('deblur', 'weights file missing', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'),
                                                            '--weights', ws.path('nope.pth')), '{ws}/nope.pth'),
    Row('deblur', 'weights file truncated',
        lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'), '--weights',
                          truncate(ws.file('cut.pth', open(ws.weights, 'rb').read()), half)), '{ws}/cut.pth'),
    Row('deblur', 'option file missing', lambda ws: ['-i', ws.image('a.png'), '-o', ws.path('out'), '--opt',
                                                     ws.path('nope.yml')], '{ws}/nope.yml'),
    Row('deblur', 'arch args not JSON', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'),
                                                          '--arch-args', '{oops'), '--arch-args'),
    Row('deblur', 'unknown arch', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'),
                                                    '--arch', 'SGENet2', '--arch-args', '{}'), "'SGENet2'"),
    Row('deblur', 'tile not larger than overlap', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'),
                                                                    '--tile', 32, '--tile-overlap', 32), '--tile'),
    Row('deblur', 'unknown device', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'),
                                                      '--device', 'tpu'), '--device tpu'),
    # --- deblur: output folder and names (nothing may be overwritten)
    Row('deblur', 'output is a file', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.file('out')),
        '{ws}/out exists and is not a folder'),
    Row('deblur', 'output below a file', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o',
                                                           os.path.join(ws.file('out'), 'sub')),
        '{ws}/out is a file'),
    Row('deblur', 'output folder read-only', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o',
                                                               ws.read_only_folder('out')), '{ws}/out is not writable'),
    Row('deblur', 'output inside a read-only folder',
        lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', os.path.join(ws.read_only_folder('ro'), 'out')),
        'no permission to create folders in {ws}/ro'),
    Row('deblur', 'output on a file system refusing folders',
        lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', '/sys/sgenet-bad-inputs-test'),
        '/sys/sgenet-bad-inputs-test', linux_only=True),
    Row('deblur', "result would replace the user's file", deblur_with_user_file,
        '{ws}/photos/a.png already exists; pass --overwrite'),
    Row('deblur', 'result would replace an earlier result', deblur_over_earlier_result,
        '{ws}/out/a.png already exists; pass --overwrite'),
    Row('deblur', 'result would replace its input', lambda ws: deblur(ws, '-i', ws.image('in/a.png'), '-o',
                                                                      ws.path('in'), '--overwrite'),
        'overwrite the input {ws}/in/a.png'),
    Row('deblur', 'two inputs, one result name', deblur_two_to_one_name, '{ws}/out/a.png'),
    # --- deblur: checked once the network exists, still before the output folder is made
    Row('deblur', 'weights of another arch', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'),
                                                               '--arch-args', '{"channels": [8, 12, 20]}'),
        'does not fit'),
    Row('deblur', 'tile off the network grid', lambda ws: deblur(ws, '-i', ws.image('a.png'), '-o', ws.path('out'),
                                                                 '--tile', 66), '--tile 66'),
    Row('deblur', 'no input can be read', lambda ws: deblur(ws, '-i', ws.file('in/broken.png', b'not a png'), '-o',
                                                            ws.path('out')), '{ws}/in/broken.png'),

    # --- prepare_gopro
    Row('prepare_gopro', 'input does not exist', lambda ws: gopro(ws, source=ws.path('nowhere')), '{ws}/nowhere'),
    Row('prepare_gopro', 'unpaired image', lambda ws: gopro_without(ws, 'train/GOPR0001_07_00/sharp/000002.png'),
        '{ws}/GOPRO_Large/train/GOPR0001_07_00/blur/000002.png has no sharp counterpart'),
    Row('prepare_gopro', 'truncated image',
        lambda ws: gopro_with_truncated(ws, 'test/GOPR0002_11_00/sharp/000003.png'),
        '{ws}/GOPRO_Large/test/GOPR0002_11_00/sharp/000003.png'),
    Row('prepare_gopro', 'step larger than crop', lambda ws: gopro(ws, '--step', 48), 'step'),
    Row('prepare_gopro', 'frames smaller than the crop', lambda ws: gopro(ws, '--crop-size', 48, '--step', 24),
        '{ws}/GOPRO_Large/train/GOPR0001_07_00/blur/000001.png is 56x40'),
    Row('prepare_gopro', 'output is a file', lambda ws: gopro(ws, '--output', ws.file('out')),
        '{ws}/out exists and is not a folder'),
    Row('prepare_gopro', 'output below a file', lambda ws: gopro(ws, '--output', os.path.join(ws.file('out'), 'GoPro')),
        '{ws}/out is a file'),
    Row('prepare_gopro', 'output folder read-only', lambda ws: gopro(ws, '--output', ws.read_only_folder('GoPro')),
        '{ws}/GoPro is not writable'),
    Row('prepare_gopro', 'output on a file system refusing folders',
        lambda ws: gopro(ws, '--output', '/sys/sgenet-bad-inputs-test'), '/sys/sgenet-bad-inputs-test',
        linux_only=True),
    Row('prepare_gopro', 'existing split truncated to 12 KB', lambda ws: gopro_with_damaged_split(ws, 12 * 1024),
        '{ws}/GoPro/train/blur.lmdb/data.mdb is truncated'),
    Row('prepare_gopro', 'existing split truncated to half', lambda ws: gopro_with_damaged_split(ws, half),
        '{ws}/GoPro/train/blur.lmdb/data.mdb is truncated'),
    Row('prepare_gopro', 'existing split with a scrambled page', gopro_with_scrambled_page,
        '{ws}/GoPro/train/blur.lmdb'),
    Row('prepare_gopro', 'existing split not made by the tool', gopro_over_foreign_folder,
        '{ws}/GoPro/test exists but is not a complete dataset'),

    # --- prepare_hide
    Row('prepare_hide', 'input does not exist', lambda ws: ['--input', ws.path('nowhere')], '{ws}/nowhere'),
    Row('prepare_hide', 'sharp image missing', lambda ws: hide_without(ws, 'GT/3fromGOPR1000.png'),
        '{ws}/HIDE_dataset/test/test-long-shot/3fromGOPR1000.png has no sharp counterpart'),
    Row('prepare_hide', 'output is a file', lambda ws: hide(ws, '--output', ws.file('out')),
        '{ws}/out exists and is not a folder'),
    Row('prepare_hide', 'existing LMDB truncated to 12 KB', hide_with_damaged_output,
        '{ws}/HIDE/test/sharp.lmdb/data.mdb is truncated'),

    # --- prepare_realblur / prepare_rsblur: list files and the images they name
    Row('prepare_realblur', 'input does not exist', lambda ws: ['--input', ws.path('nowhere')], '{ws}/nowhere'),
    Row('prepare_realblur', 'list file missing', lambda ws: realblur_without(ws, 'RealBlur_J_test_list.txt'),
        'List file {ws}/RealBlur/RealBlur_J_test_list.txt does not exist'),
    Row('prepare_realblur', 'image named in a list missing',
        lambda ws: realblur_without(ws, f'{REALBLUR_FOLDERS["R"]}/scene230/blur/blur_7.png'),
        f'{{ws}}/RealBlur/{REALBLUR_FOLDERS["R"]}/scene230/blur/blur_7.png (named in '
        '{ws}/RealBlur/RealBlur_R_test_list.txt, line 1) does not exist'),
    Row('prepare_realblur', 'input one folder too high',
        lambda ws: ['--input', ws.root, '--lists', ws.realblur_source(), '--variants', 'J'],
        f'{{ws}}/{REALBLUR_FOLDERS["J"]}, which {{ws}}/RealBlur/RealBlur_J_train_list.txt names, does not exist'),
    Row('prepare_rsblur', 'list files not where --lists says', lambda ws: rsblur(ws, '--lists', ws.path('lists')),
        'List file {ws}/lists/RSBlur_real_train.txt does not exist'),
    Row('prepare_rsblur', 'malformed list line', lambda ws: rsblur_with_list_line(ws, 'RSBlur/0014/000422/gt.png'),
        '{ws}/RSBlurData/lists/RSBlur_real_val.txt, line 2: expected'),
    Row('prepare_rsblur', 'truncated image', lambda ws: rsblur_with_truncated(ws, 'RSBlur/0001/000023/gt/gt_sharp.png'),
        'Cannot decode {ws}/RSBlurData/RSBlur/0001/000023/gt/gt_sharp.png'),

    # --- train: the option file is checked before BasicSR creates anything
    Row('train', 'option file missing', lambda ws: ['-opt', ws.path('nope.yml')], '{ws}/nope.yml'),
    Row('train', 'option file not YAML', lambda ws: ['-opt', ws.file('bad.yml', b'name: [unclosed')],
        '{ws}/bad.yml is not valid YAML'),
    Row('train', 'unregistered arch', lambda ws: ['-opt', ws.train_options({'network_g.type': 'SGENet2'})],
        "network_g.type is 'SGENet2'"),
    Row('train', 'arch argument misspelt', lambda ws: ['-opt', ws.train_options({'network_g.channel': [8, 12, 16]})],
        'network_g cannot be built'),
    Row('train', 'training data missing',
        lambda ws: ['-opt', ws.train_options({'datasets.train.dataroot_gt': ws.path('nowhere')})],
        'datasets.train.dataroot_gt: {ws}/nowhere does not exist'),
    Row('train', 'training LMDB truncated', lmdb_training_options,
        'datasets.train.dataroot_gt: {ws}/GoPro/train/sharp.lmdb/data.mdb is truncated'),
    Row('train', 'crop larger than the images', lambda ws: ['-opt', ws.train_options({'datasets.train.gt_size': 64})],
        'datasets.train.gt_size is 64'),
    Row('train', 'fp16 on a CPU-only machine', lambda ws: ['-opt', ws.train_options({'train.mixed_precision': 'fp16'})],
        'train.mixed_precision is fp16 on cpu', cpu_only=True),
    Row('train', 'schedule shorter than the run', lambda ws: ['-opt', ws.train_options({'train.total_iter': 5})],
        'train.scheduler.periods'),
    Row('train', 'resume state missing',
        lambda ws: ['-opt', ws.train_options({'path.resume_state': ws.path('nope.state')})],
        'path.resume_state: {ws}/nope.state does not exist'),
    Row('train', 'resume state truncated',
        lambda ws: ['-opt', ws.train_options({'path.resume_state': truncated_copy(
            ws, '2.state', {'iter': 2, 'epoch': 1, 'optimizers': [{'state': {}, 'param_groups': []}],
                            'schedulers': [], 'padding': torch.zeros(4096)})})],
        'path.resume_state: {ws}/2.state is truncated'),
    Row('train', 'pretrained weights truncated',
        lambda ws: ['-opt', ws.train_options({'path.pretrain_network_g': truncated_copy(ws, 'w.pth', ws.weights)})],
        '{ws}/w.pth'),
    Row('train', 'current folder read-only', lambda ws: run_in_read_only_folder(ws, ws.train_options()),
        '{ws}/run/experiments cannot be created'),

    # --- test
    Row('test', 'option file missing', lambda ws: ['-opt', ws.path('nope.yml')], '{ws}/nope.yml'),
    Row('test', 'weights missing', lambda ws: ['-opt', ws.test_options({'path.pretrain_network_g': ws.path('w.pth')})],
        'path.pretrain_network_g: {ws}/w.pth does not exist'),
    Row('test', 'weights truncated',
        lambda ws: ['-opt', ws.test_options({'path.pretrain_network_g': truncated_copy(ws, 'w.pth', ws.weights)})],
        '{ws}/w.pth'),
    Row('test', 'test data missing',
        lambda ws: ['-opt', ws.test_options({'datasets.test_1.dataroot_lq': ws.path('nowhere')})],
        'datasets.test_1.dataroot_lq: {ws}/nowhere does not exist'),
    Row('test', 'unregistered metric', lambda ws: ['-opt', ws.test_options({'val.metrics.psnr.type': 'psnr'})],
        "val.metrics.psnr.type is 'psnr'"),
    Row('test', 'current folder read-only', lambda ws: run_in_read_only_folder(ws, ws.test_options()),
        '{ws}/run/results cannot be created'),

    # --- export
    Row('export', 'weights file missing', lambda ws: ['--weights', ws.path('nope.pth'), '-o', ws.path('a.onnx')],
        '{ws}/nope.pth does not exist'),
    Row('export', 'weights of another arch',
        lambda ws: ['--weights', ws.weights, '--arch', 'MIMOUNet', '-o', ws.path('a.onnx')],
        'does not fit MIMOUNet'),
    Row('export', 'output exists', lambda ws: export(ws, '-o', ws.file('a.onnx', b'mine')),
        '-o {ws}/a.onnx already exists; pass --overwrite'),
    Row('export', 'output folder missing', lambda ws: export(ws, '-o', ws.path('no', 'a.onnx')),
        'the folder {ws}/no does not exist'),
    Row('export', 'output folder read-only', lambda ws: export(ws, '-o', os.path.join(ws.read_only_folder('ro'),
                                                                                     'a.onnx')),
        '-o {ws}/ro/a.onnx: {ws}/ro is not writable'),
    Row('export', 'output on a file system refusing files', lambda ws: export(ws, '-o', '/proc/sgenet-test.onnx'),
        '-o /proc/sgenet-test.onnx cannot be written', linux_only=True),

    # --- study: the study file and every run's options are checked before anything is written
    Row('study', 'study file missing', lambda ws: [ws.path('nope.yml')], '{ws}/nope.yml does not exist'),
    Row('study', 'unknown key', lambda ws: [study_file(ws, 'variants: [{name: a}]\nvariant: 1\n')],
        'unknown key(s) variant'),
    Row('study', 'base option file missing',
        lambda ws: [ws.file('study.yml', b'name: bad\nbase: nope.yml\nseeds: [0]\nbudget: {iters: 2}\n'
                                         b'variants: [{name: a}]\n')], 'base names nope.yml'),
    Row('study', 'arch argument misspelt in a variant',
        lambda ws: [study_file(ws, 'variants: [{name: a, overrides: {network_g.channel: [8, 8, 8]}}]\n'),
                    '--out', ws.path('out')], 'network_g cannot be built'),
    Row('study', 'unknown --variants', lambda ws: [study_file(ws, 'variants: [{name: a}]\n'), '--variants', 'b'],
        '--variants: b not in the study'),
    Row('study', 'output is a file', lambda ws: [study_file(ws, 'variants: [{name: a}]\n'), '--out', ws.file('out')],
        '--out: {ws}/out exists and is not a folder'),
]


# ----------------------------------------------------------------------------- running


@pytest.fixture(scope='module')
def shared(tmp_path_factory):
    """Inputs every row may copy: tiny weights, source trees and prepared datasets."""
    root = tmp_path_factory.mktemp('shared')
    torch.manual_seed(0)
    network = ARCH_REGISTRY.get('SGENet')(**{key: value for key, value in TINY_SGENET.items() if key != 'type'})
    weights = str(root / 'sgenet.pth')
    torch.save({'params': network.state_dict()}, weights)
    make_gopro_tree(str(root / 'GOPRO_Large'))
    make_hide_tree(str(root / 'HIDE_dataset'))
    make_realblur_tree(str(root / 'RealBlur'))
    make_rsblur_tree(str(root / 'RSBlurData'), str(root / 'RSBlurData' / 'lists'))
    quiet = {'workers': 1, 'progress': False, 'log': lambda *_: None}
    prepare_gopro(str(root / 'GOPRO_Large'), str(root / 'GoPro'), grid=SubimageGrid(24, 12), **quiet)
    prepare_hide(str(root / 'HIDE_dataset'), str(root / 'HIDE'), **quiet)
    return {'weights': weights, 'gopro_source': str(root / 'GOPRO_Large'), 'hide_source': str(root / 'HIDE_dataset'),
            'prepared_gopro': str(root / 'GoPro'), 'prepared_hide': str(root / 'HIDE'),
            'realblur_source': str(root / 'RealBlur'), 'rsblur_source': str(root / 'RSBlurData')}


class Runner:
    """``run(argv, cwd, deny_write) -> (status, stdout, stderr)`` for ``python <argv>``."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.count = 0
        self.process = None
        if not FRESH_PROCESSES:
            self.process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'tests', 'entry_point_runner.py')],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=python_env())

    def run(self, argv, cwd, deny_write):
        if self.process is None:
            if deny_write and os.geteuid() == 0:
                pytest.skip('a read-only folder is writable for root; run without SGENET_FRESH_PROCESSES')
            done = subprocess.run([sys.executable, *argv], cwd=cwd, env=python_env(), text=True, capture_output=True,
                                  timeout=300)
            return done.returncode, done.stdout, done.stderr
        self.count += 1
        stdout, stderr = (os.path.join(self.scratch, f'{self.count}.{name}') for name in ('out', 'err'))
        request = {'argv': argv, 'cwd': cwd, 'stdout': stdout, 'stderr': stderr, 'deny_write': deny_write}
        self.process.stdin.write(json.dumps(request) + '\n')
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, 'the entry-point runner died'
        with open(stdout) as out, open(stderr) as err:
            return json.loads(answer)['status'], out.read(), err.read()

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    runner = Runner(str(tmp_path_factory.mktemp('runner')))
    yield runner
    runner.close()


def listing(root):
    """{relative path: (kind, size, mtime)} of everything under ``root``."""
    entries = {}
    for parent, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(parent, name)
            info = os.lstat(path)
            kind = 'folder' if stat.S_ISDIR(info.st_mode) else 'file'
            entries[os.path.relpath(path, root)] = (kind, None if kind == 'folder' else info.st_size,
                                                    None if kind == 'folder' else info.st_mtime_ns)
    return entries


ERROR_LINE = re.compile(r'^([^:]+: )?error: ')  # ours, or argparse's "<prog>: error: ..."


def error_messages(stderr):
    """Each ``error:`` line with the indented lines that continue it (a list of bad files)."""
    messages, continuing = [], False
    for line in stderr.splitlines():
        if ERROR_LINE.match(line):
            messages.append(line)
            continuing = True
        elif continuing and line.startswith(' '):
            messages[-1] += '\n' + line
        else:
            continuing = False
    return messages


@pytest.mark.parametrize('row', ROWS, ids=[f'{row.entry}: {row.case}' for row in ROWS])
def test_bad_input_is_one_error_line_and_writes_nothing(row, runner, shared, tmp_path):
    if row.linux_only and not LINUX:
        pytest.skip('needs Linux /sys')
    if row.cpu_only and torch.cuda.is_available():
        pytest.skip('fp16 runs where there is CUDA')
    ws = Workspace(str(tmp_path / 'ws'), shared)
    os.makedirs(ws.root)
    arguments = [str(argument) for argument in row.arguments(ws)]
    before = listing(ws.root)

    status, stdout, stderr = runner.run(ENTRY_POINTS[row.entry] + arguments, ws.cwd, ws.deny_write)

    assert 'Traceback' not in stderr, stderr
    errors = error_messages(stderr)
    assert len(errors) == 1, stderr
    assert row.names.format(ws=ws.root) in errors[0], errors[0]
    assert status == 2, (status, stderr)
    assert listing(ws.root) == before, 'the entry point wrote or changed files'
