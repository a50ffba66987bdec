"""The demo: its camera-shake synthesis, and a --quick run end to end."""
import glob
import os

import cv2
import numpy as np
import pytest

from basicsr_sgenet.data.synthetic_blur import (ShakeSettings, average_frames, render_view, shake_trajectory,
                                                synthesize_pair)
from basicsr_sgenet.demo import QUICK, TREE_MARKER, DemoError, synthesize_gopro_tree
from conftest import REPO_ROOT, run_python
from tiny_datasets import read_lmdb


def test_shake_trajectory_is_centred_and_bounded():
    rng = np.random.default_rng(0)
    settings = ShakeSettings(max_extent=5.0, max_rotation=1.0)
    for _ in range(20):
        poses = shake_trajectory(rng, settings)
        assert 7 <= len(poses) <= 13
        np.testing.assert_array_equal(poses[len(poses) // 2], [0, 0, 0])
        assert np.abs(poses[:, :2]).max() <= 5.0 + 1e-9 and np.abs(poses[:, 2]).max() <= 1.0 + 1e-9


def test_render_view_and_averaging():
    photo = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    np.testing.assert_array_equal(render_view(photo, 10, 20, 30, 40, (0, 0, 0)), photo[10:40, 20:60])
    np.testing.assert_array_equal(render_view(photo, 10, 20, 30, 40, (3, -2, 0)), photo[8:38, 23:63])
    dark, bright = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    assert average_frames([dark, bright])[0, 0, 0] == 128  # linear camera response: GoPro's "blur"
    assert average_frames([dark, bright], gamma=2.2)[0, 0, 0] == round(255 * 0.5**(1 / 2.2))  # "blur_gamma"


def test_synthesized_pair_is_the_window_and_its_blur():
    photo = np.random.default_rng(2).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    sharp, blur, blur_gamma = synthesize_pair(photo, np.random.default_rng(3), 48, 64)
    assert sharp.shape == blur.shape == blur_gamma.shape == (48, 64, 3)
    assert any(np.array_equal(sharp, photo[top:top + 48, left:left + 64])
               for top in range(100 - 48) for left in range(120 - 64))
    assert np.abs(blur.astype(int) - sharp).mean() > 1 and not np.array_equal(blur, blur_gamma)


def test_demo_tree_has_gopro_layout_and_refuses_foreign_folders(tmp_path):
    root = tmp_path / 'GOPRO_demo'
    synthesize_gopro_tree(str(root), QUICK, seed=0)
    assert (root / TREE_MARKER).exists()
    for split, photos, frames in (('train', QUICK.train_photos, QUICK.train_frames_per_photo),
                                  ('test', QUICK.test_photos, QUICK.test_frames_per_photo)):
        for photo in photos:
            for folder in ('blur', 'blur_gamma', 'sharp'):
                assert len(os.listdir(root / split / photo / folder)) == frames
    synthesize_gopro_tree(str(root), QUICK, seed=0)  # its own tree is replaced

    foreign = tmp_path / 'mine'
    foreign.mkdir()
    with pytest.raises(DemoError, match='not made by the demo'):
        synthesize_gopro_tree(str(foreign), QUICK, seed=0)


def test_quick_demo_runs_end_to_end(tmp_path):
    workspace = tmp_path / 'ws'
    result = run_python([os.path.join(REPO_ROOT, 'scripts', 'demo.py'), '--quick', '--quiet', '--workspace',
                         str(workspace)], timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert 'PSNR on 2 unseen test frames' in result.stdout

    train_keys = read_lmdb(str(workspace / 'datasets/GoPro/train/blur.lmdb'))
    assert len(train_keys) == 2 * 2 * 6  # 2 photos x 2 frames x (2 x 3) sub-images of 64 px in 96x128
    assert (workspace / 'options/train_SGENet_demo.yml').is_file()
    assert (workspace / 'experiments/SGENet_demo/models/net_g_latest.pth').is_file()
    assert glob.glob(str(workspace / 'tb_logger/SGENet_demo/events.out.tfevents.*'))
    panels = sorted(glob.glob(str(workspace / 'results/side_by_side/*.png')))
    assert [os.path.basename(path) for path in panels] == ['chelsea_000001.png', 'chelsea_000002.png']
    assert cv2.imread(panels[0]).shape == (96 + 24, 3 * 128 + 2 * 6, 3)
