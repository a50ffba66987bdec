"""PSNR and SSIM exactly as the deblurring papers' MATLAB scripts compute them.

Published GoPro/HIDE numbers (MPRNet, Restormer, Stripformer, ... and SGENet's
comparison tables) come from MPRNet's ``Deblurring/evaluate_GOPRO_HIDE.m`` (Restormer
ships the same script as ``Motion_Deblurring/evaluate_gopro_hide.m``). It reads the
saved 8-bit PNGs with ``imread`` and calls, per image,

    ssim_val = ssim(input, gt);    psnr_val = psnr(input, gt);

on the ``uint8`` RGB arrays, then averages over the images (as BasicSR's validation
loop does). With MATLAB's defaults for ``uint8`` (Image Processing Toolbox, ``ssim``
since R2014a):

* ``psnr``: peak 255, MSE over every pixel and channel, ``10 * log10(255^2 / MSE)``.
  This equals BasicSR's ``calculate_psnr`` on the same 8-bit images.
* ``ssim``: Gaussian weights with sigma 1.5 on a ``2 * ceil(3 * sigma) + 1 = 11`` wide
  support, ``imfilter(..., 'conv', 'replicate')`` (same-size output, border pixels
  replicated), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, and the mean of the SSIM map
  over the whole image. An M x N x 3 array is a 3-D volume to MATLAB's ``ssim``: it
  filters with an 11 x 11 x 11 Gaussian, so the three colour channels are mixed by the
  filter (the channel axis is replicate-padded too), and the map is averaged over all
  M x N x 3 values. Newer releases use ``imgaussfilt3`` with the same size and padding,
  which gives the same numbers.

BasicSR's ``calculate_ssim`` instead scores each channel separately with a 2-D window,
keeps only the "valid" part of the filtered maps (5 pixels lost at every border), and
averages the channels: a different number, typically slightly lower than MATLAB's.

The Gaussian is separable and so is its normalisation, so filtering runs as three 1-D
passes; this changes nothing but float rounding (~1e-16). Channel order (BGR, as BasicSR
passes images, or RGB, as MATLAB reads them) does not change either metric: the kernel
and the replicate padding are symmetric, so reversing the channel axis reverses the SSIM
map along it and leaves its mean unchanged.

No MATLAB was available to check these functions against; they are tested against
direct numpy transcriptions of the formulas on small arrays (``tests/test_matlab_metrics.py``).
"""
import math

import numpy as np
from basicsr.metrics.metric_util import reorder_image
from basicsr.utils.registry import METRIC_REGISTRY
from scipy.ndimage import correlate1d

PEAK = 255.0
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _as_8bit_float(img, name, input_order):
    """HWC float64 copy of an 8-bit image, as MATLAB sees a saved 8-bit PNG.

    Floating inputs are rounded and clipped to [0, 255] the way writing the PNG would
    quantise them, so scores do not depend on whether the caller saved the image first.
    """
    img = np.asarray(img)
    if np.issubdtype(img.dtype, np.integer) and img.size and (img.max() > PEAK or img.min() < 0):
        raise ValueError(f'{name} holds values outside [0, 255] (dtype {img.dtype}); the MATLAB deblurring '
                         'protocol scores 8-bit images')
    img = reorder_image(img, input_order=input_order).astype(np.float64)
    # A no-op for integer input; quantises float input like saving an 8-bit PNG does.
    return np.clip(np.round(img), 0, PEAK)


def _prepare_pair(img, img2, crop_border, input_order, test_y_channel):
    if img.shape != img2.shape:
        raise ValueError(f'Image shapes differ: {img.shape} vs {img2.shape}')
    if test_y_channel:
        raise ValueError('The MATLAB deblurring protocol scores RGB; for Y-channel scores use '
                         'calculate_psnr / calculate_ssim with test_y_channel: true')
    img = _as_8bit_float(img, 'img', input_order)
    img2 = _as_8bit_float(img2, 'img2', input_order)
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    return img, img2


def gaussian_kernel_1d(sigma=SSIM_SIGMA):
    """MATLAB ``ssim``'s Gaussian along one axis: radius ceil(3 * sigma), unit sum.

    ``fspecial('gaussian', ...)`` (2-D) and the explicit 3-D kernel in ``ssim.m`` both
    equal the outer product of this normalised 1-D kernel; their ``eps * max`` cut-off
    removes nothing at sigma 1.5 (the smallest 3-D weight is ~6e-8 of the largest).
    """
    radius = math.ceil(3 * sigma)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-offsets**2 / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_filter_replicate(volume, sigma=SSIM_SIGMA):
    """``imfilter(volume, gaussian, 'conv', 'replicate')``: same size, Gaussian along
    every axis of ``volume`` (2-D image or 3-D volume), borders replicated."""
    kernel = gaussian_kernel_1d(sigma)
    out = volume
    for axis in range(volume.ndim):
        # scipy's mode 'nearest' repeats the edge value: MATLAB's 'replicate'.
        out = correlate1d(out, kernel, axis=axis, mode='nearest')
    return out


def ssim_matlab_map(img, img2, dynamic_range=PEAK, sigma=SSIM_SIGMA):
    """SSIM map of two float arrays (2-D image or H x W x C volume) as MATLAB's ``ssim``
    computes it, same size as the inputs."""
    c1 = (SSIM_K1 * dynamic_range)**2
    c2 = (SSIM_K2 * dynamic_range)**2
    mu_x = gaussian_filter_replicate(img, sigma)
    mu_y = gaussian_filter_replicate(img2, sigma)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_xx = gaussian_filter_replicate(img * img, sigma) - mu_xx
    sigma_yy = gaussian_filter_replicate(img2 * img2, sigma) - mu_yy
    sigma_xy = gaussian_filter_replicate(img * img2, sigma) - mu_xy
    numerator = (2 * mu_xy + c1) * (2 * sigma_xy + c2)
    denominator = (mu_xx + mu_yy + c1) * (sigma_xx + sigma_yy + c2)
    return numerator / denominator


@METRIC_REGISTRY.register()
def calculate_psnr_matlab(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, **kwargs):
    """PSNR as MATLAB's ``psnr(uint8, uint8)`` in MPRNet's ``evaluate_GOPRO_HIDE.m``.

    Args:
        img, img2 (ndarray): 8-bit images, values in [0, 255] (BasicSR passes uint8 BGR
            HWC arrays from ``tensor2img``). Float arrays are rounded to 8 bits first.
        crop_border (int): pixels dropped at every edge before scoring. The deblurring
            protocol uses 0.
        input_order (str): 'HWC' or 'CHW'.
        test_y_channel (bool): not part of this protocol; True raises ValueError.

    Returns:
        float: PSNR in dB (inf for identical images).
    """
    img, img2 = _prepare_pair(img, img2, crop_border, input_order, test_y_channel)
    mse = np.mean((img - img2)**2)
    if mse == 0:
        return float('inf')
    return float(10 * np.log10(PEAK**2 / mse))


@METRIC_REGISTRY.register()
def calculate_ssim_matlab(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, **kwargs):
    """SSIM as MATLAB's ``ssim(uint8, uint8)`` (R2014a and later) in MPRNet's
    ``evaluate_GOPRO_HIDE.m``: 11x11(x11) Gaussian, sigma 1.5, replicate padding, full
    image, colour images filtered as a 3-D volume.

    Args: as ``calculate_psnr_matlab``. Single-channel images (H x W or H x W x 1) are
    2-D images to MATLAB and are filtered in 2-D.

    Returns:
        float: mean of the SSIM map.
    """
    img, img2 = _prepare_pair(img, img2, crop_border, input_order, test_y_channel)
    if img.shape[2] == 1:
        # MATLAB drops trailing singleton dimensions: H x W x 1 is a 2-D image.
        img, img2 = img[..., 0], img2[..., 0]
    return float(ssim_matlab_map(img, img2).mean())
