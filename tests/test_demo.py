"""The demo and the pieces it is made of: camera-shake synthesis, the synthetic GoPro
tree, the comparison panel, the wall-clock budget, and a --quick run end to end."""
import glob
import os

import cv2
import numpy as np
import pytest

from basicsr_sgenet.data.preparation import SubimageGrid
from basicsr_sgenet.data.synthetic_blur import (ShakeSettings, average_frames, render_view, shake_trajectory,
                                                synthesize_pair)
from basicsr_sgenet.data.synthetic_gopro import (TREE_MARKER, SyntheticGoProSettings, build_synthetic_gopro,
                                                 load_photo, write_synthetic_tree)
from basicsr_sgenet.integration.errors import PreparationError
from basicsr_sgenet.tools.plotting import comparison_panel, most_blurred_window
from basicsr_sgenet.tools.training_budget import (StepTiming, iterations_for_budget, print_frequency,
                                            validation_frequency)
from conftest import REPO_ROOT, run_python
from tiny_datasets import read_lmdb

TINY = SyntheticGoProSettings(train_photos=('astronaut', 'coffee'), test_photos=('chelsea',), train_frames_per_photo=2,
                              test_frames_per_photo=1, train_frame_size=(48, 64), test_frame_size=(40, 48))


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


def test_bundled_photos_load_as_rgb_and_unknown_names_are_refused():
    assert load_photo('camera').shape == (512, 512, 3)  # grey, repeated to RGB
    assert load_photo('motorcycle').shape[2] == 3
    with pytest.raises(PreparationError, match="unknown photo 'lena'"):
        load_photo('lena')
    with pytest.raises(PreparationError, match='held out.*chelsea'):
        SyntheticGoProSettings(train_photos=('chelsea', 'coffee'), test_photos=('chelsea',))
    with pytest.raises(PreparationError, match='synthetic data: unknown key.*frames'):
        SyntheticGoProSettings.from_dict({'frames': 3})


def test_synthetic_tree_has_gopro_layout_is_reused_and_refuses_foreign_folders(tmp_path):
    root = tmp_path / 'GOPRO'
    assert write_synthetic_tree(str(root), TINY, seed=0)
    assert (root / TREE_MARKER).is_file() and not (tmp_path / 'GOPRO.partial').exists()
    for split, photos, frames in (('train', TINY.train_photos, 2), ('test', TINY.test_photos, 1)):
        for photo in photos:
            for folder in ('blur', 'blur_gamma', 'sharp'):
                assert len(os.listdir(root / split / photo / folder)) == frames
    first = cv2.imread(str(root / 'train/astronaut/blur/000001.png'))
    assert not write_synthetic_tree(str(root), TINY, seed=0)  # the same request: reused as it is
    assert write_synthetic_tree(str(root), TINY, seed=1)      # another seed: rendered again
    assert not np.array_equal(first, cv2.imread(str(root / 'train/astronaut/blur/000001.png')))

    foreign = tmp_path / 'mine'
    foreign.mkdir()
    with pytest.raises(PreparationError, match='not a synthetic GoPro tree'):
        write_synthetic_tree(str(foreign), TINY, seed=0)


def test_an_older_demo_workspace_is_replaced(tmp_path):
    from basicsr_sgenet.data.synthetic_gopro import LEGACY_MARKER
    (tmp_path / 'tree' / 'train').mkdir(parents=True)
    (tmp_path / 'tree' / LEGACY_MARKER).touch()
    (tmp_path / 'datasets' / 'train').mkdir(parents=True)  # the older demo's LMDBs
    build_synthetic_gopro(str(tmp_path / 'tree'), str(tmp_path / 'datasets'), TINY, SubimageGrid(32, 16),
                          log=lambda *_: None)
    assert (tmp_path / 'tree' / TREE_MARKER).is_file() and not (tmp_path / 'tree' / LEGACY_MARKER).exists()


def test_synthetic_gopro_lmdbs_are_cut_like_gopro(tmp_path):
    paths = build_synthetic_gopro(str(tmp_path / 'tree'), str(tmp_path / 'datasets'), TINY, SubimageGrid(32, 16),
                                  log=lambda *_: None)
    keys = read_lmdb(os.path.join(paths.datasets, 'train', 'blur.lmdb'))
    assert len(keys) == 2 * 2 * (2 * 3)  # 2 photos x 2 frames x (2 x 3) sub-images of 32 px in 48x64
    assert len(read_lmdb(os.path.join(paths.datasets, 'test', 'sharp.lmdb'))) == 1


def test_most_blurred_window_finds_the_blur_and_the_panel_shows_a_zoom():
    sharp = np.zeros((30, 40, 3), np.uint8)
    blurred = sharp.copy()
    blurred[20:26, 5:11] = 200  # the only place that differs
    assert most_blurred_window(blurred, sharp, 6, 6) == (20, 5)
    panel = comparison_panel([blurred, blurred, sharp], ['a', 'b', 'c'], zoom_window=(20, 5, 10, 10), zoom=3)
    # caption + image + gap + 3x zoom of 10 px rows; three columns of max(40, 30) px with two gaps
    assert panel.shape == (24 + 30 + 6 + 30, 3 * 40 + 2 * 6, 3)
    plain = comparison_panel([sharp, sharp], ['a', 'b'])
    assert plain.shape == (24 + 30, 2 * 40 + 6, 3)


def test_budget_turns_measured_step_times_into_iterations():
    timing = StepTiming(seconds_per_iter=0.25, seconds_per_validation=2.0, setup_seconds=10.0)
    # 300 s - 10 s set-up - 5 validations x 2 s = 280 s of steps at 0.25 s each
    assert iterations_for_budget(300, timing, validations=5) == 1120
    slower = StepTiming(seconds_per_iter=1.0, seconds_per_validation=2.0, setup_seconds=10.0)
    assert iterations_for_budget(300, slower, validations=5) == 280  # a 4x slower CPU: 4x fewer, same time
    assert iterations_for_budget(5, timing, validations=5, minimum=50) == 50  # a run always trains
    assert iterations_for_budget(300, timing, validations=5, maximum=100) == 100
    assert print_frequency(0.25, every_seconds=3) == 12 and print_frequency(10.0) == 1
    assert validation_frequency(1120, 4, 12) == 276 and 276 % 12 == 0
    assert validation_frequency(10, 4, 12) == 12


def test_budget_calibration_times_real_training_steps(tmp_path):
    import yaml
    from basicsr_sgenet.tools.training_budget import measure_step_timing
    from tiny_experiment import training_options, write_pairs

    write_pairs(tmp_path / 'data', count=2, size=32)
    opt = training_options(tmp_path / 'data', 'calibrate', total_iter=5, gt_size=16)
    opt['datasets']['val']['phase'] = 'val'
    timing = measure_step_timing(yaml.safe_load(yaml.safe_dump(opt)), max_seconds=1.0)
    assert timing.seconds_per_iter > 0 and timing.seconds_per_validation > 0 and timing.setup_seconds > 0


def test_quick_demo_runs_end_to_end(tmp_path):
    workspace = tmp_path / 'ws'
    result = run_python([os.path.join(REPO_ROOT, 'scripts', 'demo.py'), '--quick', '--workspace', str(workspace)],
                        timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert 's per iteration on this machine' in out      # the iteration count was fitted to the budget
    assert 'validation at iter' in out and 'iter ' in out   # progress while it trains
    assert 'Held-out photo (chelsea)' in out and '  mean ' in out and 'dB ->' in out

    train_keys = read_lmdb(str(workspace / 'datasets/GoPro/train/blur.lmdb'))
    assert len(train_keys) == 2 * 2 * 6  # 2 photos x 2 frames x (2 x 3) sub-images of 64 px in 96x128
    option_text = (workspace / 'options/train_SGENet_demo.yml').read_text()
    assert 'type: SGENet' in option_text and 'psnr_matlab' not in option_text
    assert (workspace / 'experiments/SGENet_demo/models/net_g_latest.pth').is_file()
    panels = sorted(glob.glob(str(workspace / 'results/side_by_side/*.png')))
    assert [os.path.basename(path) for path in panels] == ['chelsea_000001.png', 'chelsea_000002.png']
    assert cv2.imread(panels[0]).shape == (24 + 96 + 6 + 96, 3 * 128 + 2 * 6, 3)  # with its 3x zoom row


def test_demo_refuses_bad_arguments():
    result = run_python([os.path.join(REPO_ROOT, 'scripts', 'demo.py'), '--minutes', '0'])
    assert result.returncode == 2 and '--minutes must be positive' in result.stderr


class FakeClock:
    """A clock that a fake training step advances: no timing in tests."""

    def __init__(self, durations):
        self.now, self.durations = 0.0, list(durations)

    def __call__(self):
        return self.now

    def step(self):
        self.now += self.durations.pop(0)


def test_pace_is_fitted_from_steps_after_the_slow_start():
    from basicsr_sgenet.tools.training_budget import settled_pace
    # What a demo met: 0.83 s a step at the start, then about 0.3 s.
    clock = FakeClock([0.83, 0.8, 0.6, 0.35, 0.31, 0.3, 0.29, 0.3, 0.3] + [0.3] * 40)
    pace = settled_pace(clock.step, clock=clock)
    assert pace.settled and abs(pace.seconds_per_iter - 0.3) < 0.011
    assert pace.steps < 12  # stopped once settled
    # The slow start is counted once (the trainer pays it again), not as the pace.
    assert abs(pace.start_up_seconds - (sum([0.83, 0.8, 0.6, 0.35, 0.31, 0.3]) - 6 * pace.seconds_per_iter)) < 1e-9
    timing = StepTiming(pace.seconds_per_iter, 0.0, pace.start_up_seconds)
    fitted = iterations_for_budget(200, timing, validations=0)
    assert fitted > 2.5 * iterations_for_budget(200, StepTiming(0.83, 0.0, 0.0), validations=0)


def test_pace_that_never_settles_stops_at_the_time_limit():
    from basicsr_sgenet.tools.training_budget import settled_pace
    clock = FakeClock([0.2, 0.6] * 100)  # alternating: never settles
    pace = settled_pace(clock.step, clock=clock, max_seconds=5.0)
    assert not pace.settled and clock.now >= 5.0 and clock.now < 6.0
