"""PairedFlipDataset: aligned crops and flips, and clear errors for unusable options."""

import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_sgenet.data.paired_flip_dataset import PairedFlipDataset, paired_flip
from basicsr_sgenet.data.preparation import SubimageGrid, prepare_gopro
from tiny_datasets import BLUR_OFFSET, make_gopro_tree, write_png

OFFSET = BLUR_OFFSET / 255


@pytest.fixture(scope='module')
def gopro_lmdb(tmp_path_factory):
    root = tmp_path_factory.mktemp('gopro')
    make_gopro_tree(str(root / 'src'))
    prepare_gopro(str(root / 'src'), str(root / 'GoPro'), grid=SubimageGrid(24, 12), workers=1, progress=False,
                  log=lambda *_: None)
    return root / 'GoPro'


def options(lmdb_root, split='train', **overrides):
    opt = {'name': f'tiny_{split}', 'type': 'PairedFlipDataset', 'phase': 'train' if split == 'train' else 'val',
           'dataroot_gt': str(lmdb_root / split / 'sharp.lmdb'), 'dataroot_lq': str(lmdb_root / split / 'blur.lmdb'),
           'io_backend': {'type': 'lmdb'}, 'scale': 1}
    if split == 'train':
        opt.update(gt_size=16, use_hflip=True, use_vflip=True)
    opt.update(overrides)
    return opt


def assert_aligned(sample):
    """lq = gt + offset everywhere: the same pixels were cropped and flipped in both."""
    torch.testing.assert_close(sample['lq'] - sample['gt'], torch.full_like(sample['gt'], OFFSET), atol=1e-6, rtol=0)


def test_registered_and_yields_aligned_training_crops(gopro_lmdb):
    assert DATASET_REGISTRY.get('PairedFlipDataset') is PairedFlipDataset
    dataset = build_dataset(options(gopro_lmdb))
    assert len(dataset) == 2 * 3 * 12
    for index in range(0, len(dataset), 7):
        sample = dataset[index]
        assert sample['lq'].shape == sample['gt'].shape == (3, 16, 16)
        assert sample['lq_path'] == sample['gt_path']
        assert_aligned(sample)


def test_batches_through_basicsr_dataloader(gopro_lmdb):
    opt = options(gopro_lmdb, num_worker_per_gpu=0, batch_size_per_gpu=4)
    batch = next(iter(build_dataloader(build_dataset(opt), opt, num_gpu=0, dist=False, seed=0)))
    assert batch['lq'].shape == (4, 3, 16, 16)
    torch.testing.assert_close(batch['lq'] - batch['gt'], torch.full_like(batch['gt'], OFFSET), atol=1e-6, rtol=0)


def test_validation_gives_whole_frames(gopro_lmdb):
    dataset = build_dataset(options(gopro_lmdb, 'test'))
    sample = dataset[0]
    assert sample['lq'].shape == (3, 40, 56)
    assert_aligned(sample)


def test_flips_are_the_same_for_both_images_and_do_happen(monkeypatch):
    image = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    partner = image + 1
    monkeypatch.setattr('random.random', lambda: 0.0)  # every flip fires
    flipped, flipped_partner = paired_flip([image, partner], hflip=True, vflip=True)
    np.testing.assert_array_equal(flipped, image[::-1, ::-1])
    np.testing.assert_array_equal(flipped_partner - flipped, np.ones_like(image))
    assert flipped.flags['C_CONTIGUOUS']
    only_lr, = paired_flip([image], hflip=True, vflip=False)
    np.testing.assert_array_equal(only_lr, image[:, ::-1])
    monkeypatch.setattr('random.random', lambda: 0.9)  # no flip fires
    unchanged, = paired_flip([image], hflip=True, vflip=True)
    np.testing.assert_array_equal(unchanged, image)


def test_flipped_dataset_samples_stay_aligned(gopro_lmdb, monkeypatch):
    monkeypatch.setattr('random.random', lambda: 0.0)
    dataset = PairedFlipDataset(options(gopro_lmdb))
    for index in range(len(dataset)):
        assert_aligned(dataset[index])


def test_use_rot_is_refused(gopro_lmdb):
    with pytest.raises(ValueError, match='use_rot'):
        PairedFlipDataset(options(gopro_lmdb, use_rot=True))
    PairedFlipDataset(options(gopro_lmdb, use_rot=False))


@pytest.mark.parametrize('overrides, message', [
    ({'scale': 4}, 'scale is 4'),
    ({'gt_size': None}, 'gt_size'),
    ({'dataroot_lq': '/no/such.lmdb'}, "dataroot_lq '/no/such.lmdb' is not a folder"),
])
def test_bad_options_are_named(gopro_lmdb, overrides, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        PairedFlipDataset(options(gopro_lmdb, **overrides))


def test_crop_larger_than_the_image_names_the_key(gopro_lmdb):
    dataset = PairedFlipDataset(options(gopro_lmdb, gt_size=32))
    with pytest.raises(ValueError, match='GOPR0001_07_00_000001_s001 is 24x24, smaller than gt_size 32'):
        dataset[0]


def test_size_mismatch_in_validation_names_the_file(tmp_path):
    write_png(str(tmp_path / 'lq/a.png'), np.zeros((20, 30, 3), np.uint8))
    write_png(str(tmp_path / 'gt/a.png'), np.zeros((20, 32, 3), np.uint8))
    dataset = PairedFlipDataset({'name': 'mismatch', 'phase': 'val', 'dataroot_lq': str(tmp_path / 'lq'),
                                 'dataroot_gt': str(tmp_path / 'gt'), 'io_backend': {'type': 'disk'}})
    with pytest.raises(ValueError, match=f'blurred {tmp_path}/lq/a.png is 30x20 but sharp {tmp_path}/gt/a.png is 32x20'):
        dataset[0]
