"""psnr_realblur / ssim_realblur against the numbers the authors' evaluation scripts gave
on the same synthetic pairs (tests/data/realblur_reference.json, made by running their
functions on the pairs tests/realblur_pairs.py makes)."""
import json
import math
import os

import cv2
import numpy as np
import pytest
from basicsr.metrics import calculate_metric
from basicsr.utils.registry import METRIC_REGISTRY

from basicsr_sgenet.metrics import realblur_metric
from basicsr_sgenet.metrics.realblur_metric import psnr_realblur, ssim_realblur
from conftest import REPO_ROOT
from realblur_pairs import CASES, make_pair, pair_hash

with open(os.path.join(REPO_ROOT, 'tests', 'data', 'realblur_reference.json')) as f:
    REFERENCE = json.load(f)
RUNS = {run['environment']['opencv']: run['cases'] for run in REFERENCE['runs']}
AUTHORS_PINNED = RUNS['4.2.0']  # the versions their script insists on
# What OpenCV 4.2.0 -> 5.0.0 moved these scores by (ECC's homography and warpPerspective's
# bicubic both changed), measured with the authors' script in both: at most 0.046 dB and
# 2.2e-4 SSIM. Against the pinned run only a gross error can be caught.
VERSION_DRIFT = {'psnr': 0.06, 'ssim': 3e-4}


@pytest.fixture(scope='module')
def pairs():
    return {name: make_pair(*recipe) for name, recipe in CASES.items()}


def test_the_pairs_are_the_ones_the_authors_script_scored(pairs):
    for run in RUNS.values():
        assert set(run) == set(CASES)
        for name, (restored, gt) in pairs.items():
            assert run[name]['recipe'] == list(CASES[name])
            assert run[name]['sha256'] == pair_hash(restored, gt), name


@pytest.mark.parametrize('name', sorted(CASES))
def test_matches_the_authors_script_under_the_same_opencv(pairs, name):
    if cv2.__version__ not in RUNS:
        pytest.skip(f'no reference run with OpenCV {cv2.__version__} (have {", ".join(RUNS)})')
    expected = RUNS[cv2.__version__][name]
    restored, gt = pairs[name]
    assert psnr_realblur(restored, gt) == pytest.approx(expected['psnr_realblur'], abs=1e-9)
    assert ssim_realblur(restored, gt) == pytest.approx(expected['ssim_realblur'], abs=1e-12)
    # RSBlur's script: the same, with the aligned images clipped to [0, 1]
    assert psnr_realblur(restored, gt, clip_aligned=True) == pytest.approx(expected['psnr_rsblur'], abs=1e-9)
    assert ssim_realblur(restored, gt, clip_aligned=True) == pytest.approx(expected['ssim_rsblur'], abs=1e-12)


@pytest.mark.parametrize('name', sorted(CASES))
def test_close_to_the_authors_pinned_environment(pairs, name):
    restored, gt = pairs[name]
    expected = AUTHORS_PINNED[name]
    assert abs(psnr_realblur(restored, gt) - expected['psnr_realblur']) < VERSION_DRIFT['psnr']
    assert abs(ssim_realblur(restored, gt) - expected['ssim_realblur']) < VERSION_DRIFT['ssim']


def test_clipping_matters_only_where_values_leave_the_range(pairs):
    restored, gt = pairs['darker']  # gain 0.85: intensity matching scales it above 1 in places
    assert psnr_realblur(restored, gt, clip_aligned=True) != psnr_realblur(restored, gt)
    restored, gt = pairs['shift']
    assert psnr_realblur(restored, gt, clip_aligned=True) == psnr_realblur(restored, gt)


def test_alignment_is_what_makes_the_score(pairs):
    restored, gt = pairs['shift']
    unaligned = METRIC_REGISTRY.get('calculate_psnr')(restored, gt, crop_border=0)
    assert psnr_realblur(restored, gt) > unaligned + 5  # 43.8 vs 33.8 dB


def test_called_as_basicsr_calls_metrics(pairs):
    restored, gt = pairs['rotation']
    data = {'img': restored, 'img2': gt}
    for metric in ('psnr_realblur', 'ssim_realblur'):
        value = calculate_metric(data, {'type': metric, 'crop_border': 0, 'test_y_channel': False})
        assert value == globals()[metric](restored, gt)
    chw = calculate_metric({'img': restored.transpose(2, 0, 1), 'img2': gt.transpose(2, 0, 1)},
                           {'type': 'psnr_realblur', 'input_order': 'CHW'})
    assert chw == psnr_realblur(restored, gt)
    # Restored first, ground truth second: swapping them is a different measurement.
    assert psnr_realblur(gt, restored) != psnr_realblur(restored, gt)
    # BGR in: reading the pair as RGB (channels swapped) changes the grey image ECC sees.
    assert ssim_realblur(restored[..., ::-1], gt[..., ::-1]) != ssim_realblur(restored, gt)


def test_one_alignment_serves_both_metrics(pairs, monkeypatch):
    restored, gt = pairs['large_shift']
    realblur_metric._alignments.clear()
    calls = []
    original = realblur_metric.align
    monkeypatch.setattr(realblur_metric, 'align', lambda *args: calls.append(1) or original(*args))
    psnr_realblur(restored, gt)
    ssim_realblur(restored, gt)
    assert len(calls) == 1
    changed = restored.copy()
    changed[0, 0, 0] ^= 1
    psnr_realblur(changed, gt)
    assert len(calls) == 2


def test_bad_arguments_name_themselves(pairs):
    restored, gt = pairs['shift']
    with pytest.raises(ValueError, match='crop_border is 4'):
        psnr_realblur(restored, gt, crop_border=4)
    with pytest.raises(ValueError, match='test_y_channel'):
        ssim_realblur(restored, gt, test_y_channel=True)
    with pytest.raises(ValueError, match='shapes differ'):
        psnr_realblur(restored[:90], gt)
    with pytest.raises(ValueError, match='3-channel'):
        psnr_realblur(restored[..., 0], gt[..., 0])


def test_no_alignment_is_nan():
    flat = np.full((96, 128, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    assert math.isnan(psnr_realblur(flat, noise)) and math.isnan(ssim_realblur(flat, noise))
