"""The shipped option files: every type they name is registered, the recipe's numbers
hang together, and their dataset sections build on prepared data."""
import os

import pytest
from basicsr.data import build_dataset
from basicsr.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from basicsr_sgenet.integration.errors import OptionError
from basicsr_sgenet.integration.options import check_options, read_option_file
from basicsr_sgenet.data.preparation import SubimageGrid, prepare_gopro, prepare_realblur
from conftest import REPO_ROOT
from tiny_datasets import make_gopro_tree, make_realblur_tree

OPTION_FILES = sorted(name for name in os.listdir(os.path.join(REPO_ROOT, 'options')) if name.endswith('.yml'))
GOPRO_TRAIN_PAIRS, PAPER_EPOCHS, PAPER_TOTAL_BATCH = 2103, 3000, 16


def load(name):
    path = os.path.join(REPO_ROOT, 'options', name)
    return path, read_option_file(path)


@pytest.mark.parametrize('name', OPTION_FILES)
def test_types_are_registered(name):
    _, opt = load(name)
    assert opt['model_type'] == 'DeblurModel' and opt['model_type'] in MODEL_REGISTRY
    assert opt['name'] == name[len('train_'):-4] if name.startswith('train_') else opt['name'] == name[5:-4] + '_test'
    assert opt['network_g']['type'] in name
    assert opt['scale'] == 1 and opt['num_gpu'] == 'auto'
    for dataset in opt['datasets'].values():
        assert dataset['type'] in DATASET_REGISTRY
    metrics = opt['val']['metrics']
    if 'RealBlur' in name:  # real pairs are not pixel-aligned: only the aligning protocol makes sense
        assert {key: metric['type'] for key, metric in metrics.items()} == {'psnr_realblur': 'psnr_realblur',
                                                                          'ssim_realblur': 'ssim_realblur'}
    else:
        assert {metrics[name]['type'] for name in ('psnr_matlab', 'ssim_matlab', 'psnr', 'ssim')} == {
            'calculate_psnr_matlab', 'calculate_ssim_matlab', 'calculate_psnr', 'calculate_ssim'}
    for metric in metrics.values():
        assert metric['crop_border'] == 0 and metric.get('test_y_channel', False) is False


def test_training_recipe_is_the_papers():
    _, opt = load('train_SGENet_GoPro.yml')
    train_set, train = opt['datasets']['train'], opt['train']
    assert (train_set['gt_size'], train_set['use_hflip'], train_set['use_vflip']) == (256, True, True)
    assert not train_set.get('use_rot')
    iters_per_epoch = -(-GOPRO_TRAIN_PAIRS // PAPER_TOTAL_BATCH)  # 132, the last batch partial
    assert train['total_iter'] == PAPER_EPOCHS * iters_per_epoch == train['scheduler']['periods'][0]
    assert train['optim_g'] == {'type': 'Adam', 'lr': 2e-4, 'weight_decay': 0, 'betas': [0.9, 0.999]}
    assert train['scheduler']['type'] == 'CosineAnnealingRestartLR' and train['scheduler']['eta_min'] == 1e-7
    pixel_opt = dict(train['pixel_opt'])
    assert pixel_opt == {'type': 'MultiScaleCharbonnierEdgeLoss', 'loss_weight': 1.0, 'edge_weight': 0.05,
                         'eps': 1e-3, 'strict': False}
    assert train['warmup_iter'] == 3 * iters_per_epoch  # MPRNet's 3-epoch warm-up
    LOSS_REGISTRY.get(pixel_opt.pop('type'))(**pixel_opt)
    assert train_set['total_batch_size'] == PAPER_TOTAL_BATCH and 'batch_size_per_gpu' not in train_set
    # The torchrun backend follows the hardware: a pinned nccl would fail on CPU-only machines.
    assert opt['logger']['use_tb_logger'] and 'backend' not in opt['dist_params']
    assert opt['dist_params']['timeout_minutes'] >= 60  # rank 0's full-set validation under torchrun


def test_dataset_sections_build_on_prepared_lmdbs(tmp_path, monkeypatch):
    make_gopro_tree(str(tmp_path / 'src'))
    # The option files' paths are relative to the directory training starts in.
    prepare_gopro(str(tmp_path / 'src'), str(tmp_path / 'datasets/GoPro'), grid=SubimageGrid(24, 12), workers=1,
                  progress=False, log=lambda *_: None)
    monkeypatch.chdir(tmp_path)
    for name, section in (('train_SGENet_GoPro.yml', 'val'), ('test_SGENet_GoPro.yml', 'test_1')):
        dataset_opt = dict(load(name)[1]['datasets'][section], phase=section.split('_')[0], scale=1)
        sample = build_dataset(dataset_opt)[0]
        assert sample['lq'].shape == (3, 40, 56)
    train_opt = dict(load('train_SGENet_GoPro.yml')[1]['datasets']['train'], phase='train', scale=1, gt_size=16)
    assert build_dataset(train_opt)[0]['gt'].shape == (3, 16, 16)
    # With the data in place the whole files pass the pre-flight checks, but for what this
    # test lacks: the trained weights the test files name, and 256-pixel sub-images.
    for name in ('train_SGENet_GoPro.yml', 'test_SGENet_GoPro.yml'):
        path, opt = load(name)
        if 'train' in opt['datasets']:
            opt['datasets']['train']['gt_size'] = 16
        else:
            with pytest.raises(OptionError, match='path.pretrain_network_g: .* does not exist'):
                check_options(opt, path, is_train=False)
            opt['path']['pretrain_network_g'] = None
        check_options(opt, path, is_train=name.startswith('train'))


TESTED_MODELS = sorted({name[len('test_'):-len('_GoPro.yml')] for name in OPTION_FILES
                        if name.startswith('test_') and name.endswith('_GoPro.yml')})


@pytest.mark.parametrize('model', TESTED_MODELS)
def test_every_gopro_tested_model_has_realblur_files_with_its_network_and_weights(model):
    _, gopro = load(f'test_{model}_GoPro.yml')
    for variant in ('J', 'R'):
        _, opt = load(f'test_{model}_RealBlur{variant}.yml')
        assert opt['network_g'] == gopro['network_g'] and opt['path'] == gopro['path']
        assert opt['datasets']['test_1']['dataroot_gt'] == f'datasets/RealBlur_{variant}/test/sharp.lmdb'


def test_realblur_sections_build_on_prepared_lmdbs(tmp_path, monkeypatch):
    make_realblur_tree(str(tmp_path / 'RealBlur'))
    prepare_realblur(str(tmp_path / 'RealBlur'), str(tmp_path / 'datasets'), splits=['test'], workers=1,
                     progress=False, log=lambda *_: None)
    monkeypatch.chdir(tmp_path)
    for variant in ('J', 'R'):
        dataset_opt = dict(load(f'test_SGENet_RealBlur{variant}.yml')[1]['datasets']['test_1'], phase='test', scale=1)
        dataset = build_dataset(dataset_opt)
        assert len(dataset) == 1 and dataset[0]['lq'].shape == (3, 40, 56)
