"""Train and test (the plugin's entry points and stock ``python -m basicsr.train``): every
check before anything is written, BasicSR's "archive the existing experiment folder" included. Each row runs the entry point as a child process (the
bad-input table's machinery) and asserts one ``error:`` line, exit status 2 and no file or
folder created, changed or renamed."""
import os
import shutil

import pytest
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_sgenet.integration.option_keys import unknown_keys
from basicsr_sgenet.integration.options import read_option_file

from conftest import REPO_ROOT
from test_bad_inputs import (ENTRY_POINTS, Row, Runner, Workspace, error_messages, listing,  # noqa: F401
                             shared)


def earlier_run(ws, name='bad', files=('models/net_g_2.pth', 'notes.txt')):
    """experiments/<name> of an earlier run (with a user's notes in it)."""
    for relative in files:
        ws.file(os.path.join('experiments', name, relative), b'earlier run')
    return ws.path('experiments', name)


def pretrained_in_earlier_run(ws):
    earlier = earlier_run(ws)
    weights = os.path.join(earlier, 'models', 'net_g_latest.pth')
    shutil.copy(ws.weights, weights)
    return ['-opt', ws.train_options({'path.pretrain_network_g': weights})]


def data_in_earlier_run(ws):
    earlier = earlier_run(ws)
    shutil.copytree(ws.training_data(), os.path.join(earlier, 'pairs'))
    data = os.path.join(earlier, 'pairs')
    return ['-opt', ws.train_options({'datasets.train.dataroot_gt': os.path.join(data, 'sharp'),
                                      'datasets.train.dataroot_lq': os.path.join(data, 'blur')})]


def data_in_earlier_results(ws):
    data = os.path.join(ws.path('results', 'bad'), 'pairs')
    shutil.copytree(ws.training_data(), data)
    return ['-opt', ws.test_options({'datasets.test_1.dataroot_gt': os.path.join(data, 'sharp'),
                                     'datasets.test_1.dataroot_lq': os.path.join(data, 'blur')})]


def resume_from_another_run(ws):
    state = ws.file('experiments/other/training_states/2.state')
    torch.save({'epoch': 0, 'iter': 2, 'optimizers': [], 'schedulers': []}, state)
    return ['-opt', ws.train_options({'path.resume_state': state})]


def without(ws, options, dotted):
    path = options(ws)
    with open(path) as f:
        opt = yaml.safe_load(f)
    *parents, last = dotted.split('.')
    node = opt
    for part in parents:
        node = node[part]
    del node[last]
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return ['-opt', path]


def other_weights(ws):
    torch.manual_seed(0)
    path = ws.path('wide.pth')
    torch.save({'params': ARCH_REGISTRY.get('SGENet')(channels=[8, 12, 24], num_rdm=1).state_dict()}, path)
    return path


# BasicSR's own entry point runs the same checks once the plugin is installed.
COMMANDS = dict(ENTRY_POINTS, **{'stock train': ['-m', 'basicsr.train']})

ROWS = [
    Row('train', 'name is an absolute path', lambda ws: ['-opt', ws.train_options({'name': ws.path('precious')})],
        "name '{ws}/precious' is not a plain folder name"),
    Row('stock train', 'name is an absolute path',
        lambda ws: ['-opt', ws.train_options({'name': ws.path('precious')})], "name '{ws}/precious' is not a plain"),
    Row('stock train', 'weights that do not fit the arch',
        lambda ws: ['-opt', ws.train_options({'path.pretrain_network_g': other_weights(ws)})],
        'path.pretrain_network_g: {ws}/wide.pth does not fit the SGENet built from network_g'),
    Row('train', 'name with a slash', lambda ws: ['-opt', ws.train_options({'name': 'a/b'})],
        "name 'a/b' is not a plain folder name"),
    Row('train', 'name ..', lambda ws: ['-opt', ws.train_options({'name': '..'})], "name '..' is not a plain"),
    Row('test', 'name with a slash', lambda ws: ['-opt', ws.test_options({'name': '../x'})],
        "name '../x' is not a plain folder name"),
    Row('train', 'logger.print_freq missing', lambda ws: without(ws, lambda w: w.train_options(), 'logger.print_freq'),
        'has no "logger.print_freq" key'),
    Row('train', 'train.scheduler missing', lambda ws: without(ws, lambda w: w.train_options(), 'train.scheduler'),
        'has no "train.scheduler" key'),
    Row('train', 'num_worker_per_gpu missing',
        lambda ws: without(ws, lambda w: w.train_options(), 'datasets.train.num_worker_per_gpu'),
        'has no "datasets.train.num_worker_per_gpu" key'),
    Row('test', 'val.save_img missing', lambda ws: without(ws, lambda w: w.test_options(), 'val.save_img'),
        'has no "val.save_img" key'),
    Row('test', 'val.suffix missing when saving images',
        lambda ws: ['-opt', ws.test_options({'val.save_img': True})], 'has no "val.suffix" key'),
    Row('train', 'use_rot on PairedFlipDataset',
        lambda ws: ['-opt', ws.train_options({'datasets.train.type': 'PairedFlipDataset',
                                              'datasets.train.use_rot': True})],
        'datasets.train cannot be built (Dataset "tiny": PairedFlipDataset does not do use_rot'),
    Row('train', 'batch larger than the dataset',
        lambda ws: ['-opt', ws.train_options({'datasets.train.batch_size_per_gpu': 3})],
        'datasets.train: a batch of 3 is more than the 2 training samples'),
    Row('train', 'weights that do not fit the arch',
        lambda ws: ['-opt', ws.train_options({'path.pretrain_network_g': other_weights(ws)})],
        'path.pretrain_network_g: {ws}/wide.pth does not fit the SGENet built from network_g'),
    Row('test', 'weights that do not fit the arch',
        lambda ws: ['-opt', ws.test_options({'path.pretrain_network_g': other_weights(ws)})],
        'path.pretrain_network_g: {ws}/wide.pth does not fit the SGENet built from network_g'),
    Row('train', 'optimizer argument misspelt', lambda ws: ['-opt', ws.train_options({'train.optim_g.bteas': [0.9, 0.9]})],
        'train.optim_g cannot be built (Adam: unknown argument(s) bteas'),
    Row('train', 'scheduler argument misspelt',
        lambda ws: ['-opt', ws.train_options({'train.scheduler.eta_mn': 0})],
        'train.scheduler cannot be built (CosineAnnealingRestartLR: unknown argument(s) eta_mn'),
    Row('train', 'loss argument misspelt', lambda ws: ['-opt', ws.train_options({'train.pixel_opt.edge_weigth': 0.1})],
        'train.pixel_opt cannot be built (MultiScaleCharbonnierEdgeLoss: unknown argument(s) edge_weigth'),
    # --- BasicSR renames experiments/<name> (results/<name>) of an earlier run before reading anything
    Row('train', 'pretrained weights inside the folder that would be archived', pretrained_in_earlier_run,
        'path.pretrain_network_g ({ws}/experiments/bad/models/net_g_latest.pth) is inside {ws}/experiments/bad, '
        'which this run renames'),
    Row('train', 'training data inside the folder that would be archived', data_in_earlier_run,
        'datasets.train.dataroot_gt ({ws}/experiments/bad/pairs/sharp) is inside {ws}/experiments/bad'),
    Row('test', 'test data inside the results folder that would be archived', data_in_earlier_results,
        'datasets.test_1.dataroot_gt ({ws}/results/bad/pairs/sharp) is inside {ws}/results/bad'),
    Row('train', 'resume state from another run', resume_from_another_run,
        'path.resume_state {ws}/experiments/other/training_states/2.state is not in this run\'s folder'),
]


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    runner = Runner(str(tmp_path_factory.mktemp('runner')))
    yield runner
    runner.close()


@pytest.mark.parametrize('row', ROWS, ids=[f'{row.entry}: {row.case}' for row in ROWS])
def test_mistake_is_one_line_before_anything_is_written(row, runner, shared, tmp_path):
    ws = Workspace(str(tmp_path / 'ws'), shared)
    os.makedirs(ws.root)
    arguments = [str(argument) for argument in row.arguments(ws)]
    before = listing(ws.root)

    status, stdout, stderr = runner.run(COMMANDS[row.entry] + arguments, ws.cwd, ws.deny_write)

    assert 'Traceback' not in stderr, stderr
    errors = error_messages(stderr)
    assert len(errors) == 1, stderr
    assert row.names.format(ws=ws.root) in errors[0], errors[0]
    assert status == 2, (status, stderr)
    assert listing(ws.root) == before, 'the entry point wrote, changed or renamed files'


# ----------------------------------------------------------------------------- misspelt keys

OPTION_FILES = sorted(name for name in os.listdir(os.path.join(REPO_ROOT, 'options')) if name.endswith('.yml'))


@pytest.mark.parametrize('name', OPTION_FILES)
def test_shipped_option_files_have_no_unknown_key(name):
    assert unknown_keys(read_option_file(os.path.join(REPO_ROOT, 'options', name))) == []


def test_misspelt_keys_are_named_with_the_nearest_known_key():
    opt = read_option_file(os.path.join(REPO_ROOT, 'options', 'train_SGENet_GoPro.yml'))
    opt['train']['mixed_precison'] = 'bf16'
    opt['datasets']['train']['use_hlfip'] = True
    opt['val']['metrics']['psnr']['crop_boder'] = 4
    opt['datasets']['train']['io_backend']['readahaed'] = True
    opt['logger']['save_checkpoint_frq'] = 5
    opt['loger'] = {}
    opt['train']['progressive'] = {'iters': [1], 'gt_size': [8], 'mini_batch_sizes': [1]}
    assert sorted(unknown_keys(opt)) == [
        ('datasets.train.io_backend.readahaed', 'datasets.train.io_backend.readahead'),
        ('datasets.train.use_hlfip', 'datasets.train.use_hflip'),
        ('loger', 'logger'),
        ('logger.save_checkpoint_frq', 'logger.save_checkpoint_freq'),
        ('train.mixed_precison', 'train.mixed_precision'),
        ('train.progressive.gt_size', 'train.progressive.gt_sizes'),
        ('val.metrics.psnr.crop_boder', 'val.metrics.psnr.crop_border'),
    ]


def test_training_warns_about_a_misspelt_key_and_goes_on(runner, shared, tmp_path):
    ws = Workspace(str(tmp_path / 'ws'), shared)
    os.makedirs(ws.root)
    options = ws.train_options({'train.mixed_precison': 'bf16'})
    status, stdout, stderr = runner.run(ENTRY_POINTS['train'] + ['-opt', options], ws.cwd, [])
    assert status == 0, stderr[-3000:]
    warnings = [line for line in stderr.splitlines() if line.startswith('warning: ')]
    assert warnings == [f'warning: Option file {options}: train.mixed_precison is not read by BasicSR, this plugin '
                        'or the classes the file chooses, so it has no effect; did you mean train.mixed_precision?']
