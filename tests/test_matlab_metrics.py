"""MATLAB-protocol PSNR/SSIM (basicsr_sgenet/metrics/matlab_metric.py) against values
computed by hand or by a direct, unoptimised transcription of MATLAB's ssim.m.

No MATLAB runs here, so "MATLAB-equivalent" is checked as "equal to MATLAB's
formulas": the reference below builds MATLAB's explicit 3-D Gaussian the way ssim.m
does (ndgrid, exp, normalise), replicate-pads, and filters by brute-force windowed
sums, sharing no code with the separable implementation under test.
"""
import math

import numpy as np
import pytest
from basicsr.metrics import calculate_metric
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from basicsr.utils.registry import METRIC_REGISTRY

from basicsr_sgenet.metrics.matlab_metric import calculate_psnr_matlab, calculate_ssim_matlab, gaussian_kernel_1d

C1 = (0.01 * 255)**2
C2 = (0.03 * 255)**2


def matlab_gaussian(ndim, sigma=1.5):
    """ssim.m's getGaussianWeightingFilter: 2-D (fspecial) or 3-D, radius ceil(3 sigma)."""
    radius = math.ceil(3 * sigma)
    axes = np.meshgrid(*[np.arange(-radius, radius + 1)] * ndim, indexing='ij')
    kernel = np.exp(-sum(a.astype(float)**2 for a in axes) / (2 * sigma**2))
    kernel[kernel < np.finfo(float).eps * kernel.max()] = 0
    return kernel / kernel.sum()


def brute_force_filter(volume, kernel):
    """imfilter(volume, kernel, 'conv', 'replicate') by explicit windowed sums."""
    radius = kernel.shape[0] // 2
    padded = np.pad(volume, radius, mode='edge')
    windows = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape)
    flipped = kernel[(slice(None, None, -1),) * kernel.ndim]  # 'conv' flips (a no-op here: symmetric)
    return np.tensordot(windows, flipped, axes=kernel.ndim)


def reference_ssim(a, b):
    a, b = a.astype(float), b.astype(float)
    kernel = matlab_gaussian(a.ndim)

    def filt(x):
        return brute_force_filter(x, kernel)

    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b = filt(a * a) - mu_a**2, filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2))
    return ssim_map.mean()


@pytest.fixture
def image_pair():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (14, 17, 3), dtype=np.uint8)
    noisy = np.clip(img.astype(int) + rng.integers(-30, 31, img.shape), 0, 255).astype(np.uint8)
    return img, noisy


def test_psnr_of_known_mse():
    img = np.full((4, 5, 3), 100, np.uint8)
    shifted = img + np.uint8(5)  # MSE exactly 25
    assert calculate_psnr_matlab(img, shifted) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)
    half = img.copy()
    half[:2] += 10  # 2 of 4 rows differ by 10: MSE = 100 / 2 = 50
    assert calculate_psnr_matlab(img, half) == pytest.approx(10 * math.log10(255**2 / 50), abs=1e-12)


def test_identical_images():
    img = np.random.default_rng(1).integers(0, 256, (9, 12, 3), dtype=np.uint8)
    assert calculate_psnr_matlab(img, img) == float('inf')
    assert calculate_ssim_matlab(img, img) == pytest.approx(1.0, abs=1e-15)


def test_ssim_of_constant_images_in_closed_form():
    # Constant images: every local variance and covariance is 0, so the SSIM map is
    # (2 v w + C1) / (v^2 + w^2 + C1) everywhere.
    v, w = 100.0, 110.0
    img = np.full((8, 9, 3), v, np.uint8)
    other = np.full((8, 9, 3), w, np.uint8)
    expected = (2 * v * w + C1) / (v * v + w * w + C1)
    assert calculate_ssim_matlab(img, other) == pytest.approx(expected, abs=1e-14)


def test_ssim_of_constant_shift_matches_matlab_formulas(image_pair):
    img, _ = image_pair
    shifted = np.clip(img.astype(int) + 12, 0, 255).astype(np.uint8)
    assert calculate_ssim_matlab(img, shifted) == pytest.approx(reference_ssim(img, shifted), abs=1e-12)


def test_colour_ssim_is_matlab_3d_volume_ssim(image_pair):
    img, noisy = image_pair
    expected = reference_ssim(img, noisy)  # 11x11x11 Gaussian over H x W x 3
    assert calculate_ssim_matlab(img, noisy) == pytest.approx(expected, abs=1e-12)
    per_channel_2d = np.mean([reference_ssim(img[..., c], noisy[..., c]) for c in range(3)])
    assert abs(expected - per_channel_2d) > 1e-4  # the volume treatment is what makes it MATLAB's number


def test_grayscale_ssim_is_2d(image_pair):
    img, noisy = image_pair
    gray, gray_noisy = img[..., 0], noisy[..., 0]
    expected = reference_ssim(gray, gray_noisy)
    assert calculate_ssim_matlab(gray, gray_noisy) == pytest.approx(expected, abs=1e-12)
    assert calculate_ssim_matlab(gray[..., None], gray_noisy[..., None]) == pytest.approx(expected, abs=1e-12)


def test_gaussian_is_matlab_fspecial():
    kernel = gaussian_kernel_1d()
    assert kernel.shape == (11, ) and kernel.sum() == pytest.approx(1)
    np.testing.assert_allclose(np.outer(kernel, kernel), matlab_gaussian(2), atol=1e-16)


def test_channel_order_does_not_matter(image_pair):
    img, noisy = image_pair
    bgr = calculate_ssim_matlab(img, noisy)
    rgb = calculate_ssim_matlab(img[..., ::-1], noisy[..., ::-1])
    assert bgr == pytest.approx(rgb, abs=1e-14)


def test_relation_to_basicsr_metrics(image_pair):
    img, noisy = image_pair
    # PSNR: same number as BasicSR's; SSIM: a different protocol, so a different number.
    assert calculate_psnr_matlab(img, noisy) == pytest.approx(calculate_psnr(img, noisy, crop_border=0), abs=1e-12)
    assert abs(calculate_ssim_matlab(img, noisy) - calculate_ssim(img, noisy, crop_border=0)) > 1e-4


def test_float_input_is_scored_as_saved_8bit(image_pair):
    img, noisy = image_pair
    jitter = np.random.default_rng(2).uniform(-0.49, 0.49, img.shape)
    as_float = img.astype(np.float64) + jitter
    assert calculate_ssim_matlab(as_float, noisy) == calculate_ssim_matlab(img, noisy)
    assert calculate_psnr_matlab(as_float, noisy) == calculate_psnr_matlab(img, noisy)


def test_registered_and_callable_through_basicsr(image_pair):
    img, noisy = image_pair
    for name, function in (('calculate_psnr_matlab', calculate_psnr_matlab),
                           ('calculate_ssim_matlab', calculate_ssim_matlab)):
        assert METRIC_REGISTRY.get(name) is function
        via_basicsr = calculate_metric({'img': img, 'img2': noisy}, {'type': name, 'crop_border': 0})
        assert via_basicsr == function(img, noisy)
        chw = calculate_metric({'img': img.transpose(2, 0, 1), 'img2': noisy.transpose(2, 0, 1)},
                               {'type': name, 'crop_border': 0, 'input_order': 'CHW'})
        assert chw == pytest.approx(via_basicsr, abs=1e-14)
        cropped = calculate_metric({'img': img, 'img2': noisy}, {'type': name, 'crop_border': 2})
        assert cropped == pytest.approx(function(img[2:-2, 2:-2], noisy[2:-2, 2:-2]), abs=1e-14)


def test_bad_input_is_rejected(image_pair):
    img, noisy = image_pair
    with pytest.raises(ValueError, match='shapes differ'):
        calculate_ssim_matlab(img, noisy[:-1])
    with pytest.raises(ValueError, match='test_y_channel'):
        calculate_psnr_matlab(img, noisy, test_y_channel=True)
    with pytest.raises(ValueError, match='outside'):
        calculate_psnr_matlab(img.astype(np.uint16) * 256, noisy.astype(np.uint16))
