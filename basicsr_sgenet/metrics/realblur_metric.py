"""PSNR and SSIM under RealBlur's alignment protocol, as BasicSR metrics.

Real blurred/sharp pairs come from two cameras behind a beam splitter, so a restored
image and its ground truth are not pixel-aligned; plain PSNR would mostly measure the
misalignment. RealBlur's official evaluation (``evaluation_RealBlur_ecc.py`` in
rimchang/RealBlur, used for every published RealBlur-J/R number; RSBlur's
``evaluation/evaluate_RSBlur.py`` runs the same steps) scores each image thus, with the
8-bit RGB images as float32 in [0, 1]:

1. intensity matching: the restored image ``z`` is scaled by ``sum(x * z) / sum(z * z)``
   (``x`` the ground truth; float32 sums), the least-squares gain onto ``x``;
2. alignment: OpenCV's ECC (``findTransformECC``) finds the homography taking the
   ground truth's grey image to the scaled image's (``COLOR_RGB2GRAY``, identity start,
   at most 100 iterations, eps 0, Gaussian pre-filter of size 5); the scaled image is
   warped back onto the ground truth with ``warpPerspective`` (bicubic, inverse map,
   reflected border), and a float32 mask of ones is warped the same way (nearest,
   constant 0 border) to mark the pixels that came from inside the image;
3. the warped image and the ground truth are multiplied by the mask (both zero outside);
   RSBlur's script then clips both to [0, 1] (``clip_aligned: true`` here), RealBlur's
   does not;
4. PSNR: squared errors (float32) summed in float64, divided by the mask's sum (pixels
   times channels), peak 1;
5. SSIM: scikit-image 0.17.2's ``structural_similarity`` (each channel on its own, in
   float64, Gaussian weights sigma 1.5 truncated at 3.5 sigma, ``scipy.ndimage`` 'reflect'
   borders, population covariances, data range 1) gives the SSIM map; the map is
   multiplied by the mask, 5 pixels are cut at every border, each channel's map sum is
   divided by that channel's mask sum, and the three are averaged.

Those are the authors' steps in their order and dtypes. Their script pins
scikit-image 0.17.2 and OpenCV 4.2.0: newer scikit-image computes float32 input in
float32 (a different SSIM) and no longer accepts its arguments, so step 5 is written
here with ``scipy.ndimage.gaussian_filter`` as 0.17.2 computes it. The ECC result is
OpenCV's, so scores can move slightly between OpenCV versions (see docs/evaluation.md
for how far, measured); ``tests/test_realblur_metrics.py`` holds numbers from the
authors' script run under their pinned versions.

BasicSR calls each metric on its own (restored image first, ground truth second, uint8
BGR HWC). The alignment, the costly part, is shared: the last few alignments are kept,
keyed by the images' bytes, so ``psnr_realblur`` and ``ssim_realblur`` on the same pair
align once.
"""
import hashlib
import math
from collections import OrderedDict

import cv2
import numpy as np
from basicsr.utils import get_root_logger
from basicsr.utils.registry import METRIC_REGISTRY
from scipy.ndimage import gaussian_filter

from basicsr_sgenet.metrics.matlab_metric import _as_8bit_float

ECC_ITERATIONS = 100
ECC_EPS = 0
ECC_GAUSSIAN_SIZE = 5
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scikit-image's choice for an 11-tap window at sigma 1.5
SSIM_BORDER = (2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1 - 1) // 2  # 5: the window radius
SSIM_K1, SSIM_K2 = 0.01, 0.03
_CACHE_SIZE = 4
_alignments = OrderedDict()


class AlignmentFailed(ValueError):
    """ECC found no homography (images uncorrelated, e.g. an untrained network's output)."""


def _as_unit_rgb(img, name, input_order):
    """float32 RGB HWC in [0, 1], as the authors' script reads an 8-bit PNG
    (``io.imread(path).astype('float32') / 255``) from BasicSR's BGR image."""
    img = _as_8bit_float(img, name, input_order)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'{name} has shape {img.shape}; the RealBlur protocol scores 3-channel colour images')
    rgb = np.ascontiguousarray(img[..., ::-1]).astype(np.uint8)
    return rgb.astype(np.float32) / 255


def align(restored, gt):
    """Steps 1-3 on float32 RGB images in [0, 1]: (aligned restored, masked ground truth,
    mask), all float32 H x W x 3. Raises AlignmentFailed when ECC does not converge."""
    gain = np.sum(gt * restored) / np.sum(restored * restored)
    matched = gain * restored
    warp = np.eye(3, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        _, warp = cv2.findTransformECC(cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY), cv2.cvtColor(matched, cv2.COLOR_RGB2GRAY),
                                       warp, cv2.MOTION_HOMOGRAPHY, criteria, None, ECC_GAUSSIAN_SIZE)
    except cv2.error as err:
        raise AlignmentFailed(f'ECC alignment failed: {str(err).strip().splitlines()[-1]}') from None
    size = (gt.shape[1], gt.shape[0])
    warped = cv2.warpPerspective(matched, warp, size, flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpPerspective(np.ones_like(matched, dtype='float32'), warp, size,
                               flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0)
    return warped * mask, gt * mask, mask


def masked_psnr(aligned, gt, mask):
    """Step 4: PSNR (peak 1) over the pixels the mask keeps."""
    err = np.sum((gt - aligned)**2, dtype=np.float64) / np.sum(mask)
    return 10 * np.log10(1 / err)


def _ssim_map_0172(im1, im2):
    """One channel's SSIM map as scikit-image 0.17.2 computes it (float64, Gaussian
    weights, population covariances, data range 1)."""
    im1, im2 = im1.astype(np.float64), im2.astype(np.float64)

    def blur(image):
        return gaussian_filter(image, sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE)

    ux, uy = blur(im1), blur(im2)
    uxx, uyy, uxy = blur(im1 * im1), blur(im2 * im2), blur(im1 * im2)
    vx, vy, vxy = 1.0 * (uxx - ux * ux), 1.0 * (uyy - uy * uy), 1.0 * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * 1.0)**2, (SSIM_K2 * 1.0)**2
    a1, a2, b1, b2 = 2 * ux * uy + c1, 2 * vxy + c2, ux**2 + uy**2 + c1, vx + vy + c2
    return (a1 * a2) / (b1 * b2)


def masked_ssim(aligned, gt, mask):
    """Step 5: the SSIM map weighted by the mask, borders cut, per channel, averaged."""
    ssim_map = np.empty(gt.shape)
    for channel in range(gt.shape[-1]):
        ssim_map[..., channel] = _ssim_map_0172(gt[..., channel], aligned[..., channel])
    ssim_map = ssim_map * mask
    b = SSIM_BORDER
    per_channel = ssim_map[b:-b, b:-b, :].sum(axis=0).sum(axis=0) / mask[b:-b, b:-b, :].sum(axis=0).sum(axis=0)
    return np.mean(per_channel)


def _digest(img):
    img = np.ascontiguousarray(img)
    return img.shape, img.dtype.str, hashlib.blake2b(img.tobytes(), digest_size=16).digest()


def aligned_pair(img, img2, input_order='HWC', clip_aligned=False):
    """(aligned restored, masked ground truth, mask) for BasicSR's images, or None when
    ECC fails; the last few results are reused."""
    key = (_digest(np.asarray(img)), _digest(np.asarray(img2)), input_order, bool(clip_aligned))
    if key in _alignments:
        _alignments.move_to_end(key)
        return _alignments[key]
    if np.shape(img) != np.shape(img2):
        raise ValueError(f'Image shapes differ: {np.shape(img)} vs {np.shape(img2)}')
    restored, gt = _as_unit_rgb(img, 'img', input_order), _as_unit_rgb(img2, 'img2', input_order)
    try:
        aligned, gt, mask = align(restored, gt)
        if clip_aligned:  # RSBlur's evaluate_RSBlur.py
            aligned, gt = np.clip(aligned, 0, 1), np.clip(gt, 0, 1)
        result = (aligned, gt, mask)
    except AlignmentFailed as err:
        get_root_logger().warning(f'RealBlur metrics: {err}; this image is scored NaN.')
        result = None
    _alignments[key] = result
    while len(_alignments) > _CACHE_SIZE:
        _alignments.popitem(last=False)
    return result


def _check_options(crop_border, test_y_channel):
    if crop_border:
        raise ValueError(f'crop_border is {crop_border}: the RealBlur protocol scores the whole aligned image '
                         '(its own border handling is built in); set crop_border: 0')
    if test_y_channel:
        raise ValueError('test_y_channel: the RealBlur protocol scores RGB; set test_y_channel: false')


@METRIC_REGISTRY.register()
def psnr_realblur(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, clip_aligned=False, **kwargs):
    """PSNR under RealBlur's protocol (intensity matching, ECC homography, valid-pixel mask).

    Args:
        img (ndarray): restored image, 8-bit BGR (BasicSR's ``tensor2img`` output).
        img2 (ndarray): ground truth, same size and format.
        crop_border (int): must be 0 (the protocol has its own border handling).
        input_order (str): 'HWC' or 'CHW'.
        test_y_channel (bool): must be False (the protocol scores RGB).
        clip_aligned (bool): clip the aligned images to [0, 1] before scoring, as
            RSBlur's ``evaluate_RSBlur.py`` does; False is RealBlur's script.

    Returns:
        float: PSNR in dB; NaN (with a logged warning) when ECC finds no alignment.
    """
    _check_options(crop_border, test_y_channel)
    pair = aligned_pair(img, img2, input_order, clip_aligned)
    return math.nan if pair is None else float(masked_psnr(*pair))


@METRIC_REGISTRY.register()
def ssim_realblur(img, img2, crop_border=0, input_order='HWC', test_y_channel=False, clip_aligned=False, **kwargs):
    """SSIM under RealBlur's protocol: Gaussian SSIM of the aligned pair, weighted by the
    valid-pixel mask, 5-pixel borders cut. Arguments as ``psnr_realblur``."""
    _check_options(crop_border, test_y_channel)
    pair = aligned_pair(img, img2, input_order, clip_aligned)
    return math.nan if pair is None else float(masked_ssim(*pair))
