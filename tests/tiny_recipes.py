"""Every shipped training recipe (``options/train_<Model>_GoPro.yml``), shrunk for tests:
its network at the reduced widths of ``tiny_archs.TINY_ARCHS``, tiny crops and batches,
a few iterations, no validation. Its model, loss, optimizer, scheduler kind, gradient
clipping and progressive patches stay the recipe's."""
import glob
import os

import pytest

from basicsr_sgenet.integration.options import load_options
from basicsr_sgenet.tools.training_budget import stretch_schedule
from conftest import REPO_ROOT
from random_vgg19 import write_random_vgg19
from tiny_archs import TINY_ARCHS


def recipe_files():
    """Every ``options/train_*_GoPro.yml``: a new recipe joins the tests by existing."""
    return sorted(glob.glob(os.path.join(REPO_ROOT, 'options', 'train_*_GoPro.yml')))


def recipe_name(path):
    return os.path.basename(path)[len('train_'):-len('_GoPro.yml')]


def tiny_recipe(path, data_root, name, iters=3, crop=24, total_batch=4, processes=2, checkpoint_every=None):
    """The recipe at ``path`` on the pairs in ``data_root`` (``sharp/``, ``blur/``): a
    ``processes``-process run of ``total_batch`` crops of ``crop`` pixels. Fails the
    calling test for an arch without reduced widths in ``tiny_archs.TINY_ARCHS``."""
    opt = load_options(path)
    arch = opt['network_g']['type']
    if arch not in TINY_ARCHS:
        pytest.fail(f'{os.path.basename(path)} trains {arch}, which has no reduced widths in tests/tiny_archs.py '
                    'TINY_ARCHS: add them, so the recipe is tested like the others.')
    train_set = opt['datasets']['train']
    train_set.update(dataroot_gt=str(data_root / 'sharp'), dataroot_lq=str(data_root / 'blur'),
                     io_backend={'type': 'disk'}, gt_size=crop, total_batch_size=total_batch, num_worker_per_gpu=0)
    train_set.pop('batch_size_per_gpu', None)
    for phase in [phase for phase in opt['datasets'] if phase != 'train']:
        del opt['datasets'][phase]
    opt.pop('val', None)
    train = opt['train']
    stretch_schedule(train, iters)
    progressive = train.get('progressive')
    if progressive:
        # Two stages: a smaller crop at the whole batch, then the full crop at half of it.
        stages = [total_batch, total_batch // 2]
        key = 'total_mini_batch_sizes' if 'total_mini_batch_sizes' in progressive else 'mini_batch_sizes'
        train['progressive'] = {'iters': [1, max(iters - 1, 1)], 'gt_sizes': [crop - 8, crop],
                                key: stages if key == 'total_mini_batch_sizes' else [s // processes for s in stages]}
    if (train.get('pixel_opt') or {}).get('vgg19_weights'):  # Stripformer's contrastive term: random VGG19
        vgg = data_root / 'vgg19.pth'
        train['pixel_opt']['vgg19_weights'] = str(vgg if vgg.exists() else write_random_vgg19(vgg))
    if train.get('warmup_iter', -1) > 0:
        train['warmup_iter'] = 1
    opt.update(name=name, network_g={'type': arch, **TINY_ARCHS[arch]}, num_gpu='auto')
    opt['logger'].update(print_freq=1, save_checkpoint_freq=checkpoint_every or iters, use_tb_logger=False)
    return opt
