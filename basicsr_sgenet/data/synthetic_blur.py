"""Camera-shake blur synthesised the way GoPro's was made.

GoPro (Nah et al., 2017) averaged 7 to 13 consecutive frames of a hand-held 240 fps
camera; the middle frame is the sharp target. Its ``blur`` folder averages the 8-bit
frames directly (a linear camera response assumed); ``blur_gamma`` linearises them with
gamma 2.2 first, averages, and re-applies the gamma. Here the consecutive frames are
renders of one still photo along a random camera-shake path (translation plus a little
rotation, so the blur varies across the frame, as real shake does), both ways.
"""
from dataclasses import dataclass

import cv2
import numpy as np

GAMMA = 2.2  # GoPro's approximation of its camera response curve


@dataclass(frozen=True)
class ShakeSettings:
    min_subframes: int = 7    # GoPro: 7-13 frames per blurred image
    max_subframes: int = 13
    max_extent: float = 6.0   # largest displacement from the middle pose, in pixels
    max_rotation: float = 1.0  # largest rotation from the middle pose, in degrees


def shake_trajectory(rng, settings=ShakeSettings()):
    """Poses (dx, dy, angle in degrees), one per sub-frame; the middle pose is (0, 0, 0).

    A random walk of the velocity (the hand keeps moving but wobbles), scaled so the
    farthest pose is a random fraction of ``max_extent`` away from the middle one."""
    count = int(rng.integers(settings.min_subframes, settings.max_subframes + 1))
    heading = rng.uniform(0, 2 * np.pi)
    velocity = np.array([np.cos(heading), np.sin(heading)]) + np.cumsum(rng.normal(0, 0.5, (count, 2)), axis=0)
    path = np.cumsum(velocity, axis=0)
    path -= path[count // 2]
    path *= rng.uniform(0.3, 1.0) * settings.max_extent / max(np.abs(path).max(), 1e-6)
    angles = np.cumsum(rng.normal(0, 1, count))
    angles -= angles[count // 2]
    angles *= rng.uniform(0, 1) * settings.max_rotation / max(np.abs(angles).max(), 1e-6)
    return np.column_stack([path, angles])


def render_view(photo, top, left, height, width, pose):
    """The ``height x width`` window of ``photo`` at (top, left), seen from ``pose``:
    shifted by (dx, dy) and rotated by ``angle`` about the window's centre.

    The identity pose gives exactly the window (bilinear sampling at whole pixels)."""
    dx, dy, angle = pose
    theta = np.deg2rad(angle)
    cos, sin = np.cos(theta), np.sin(theta)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Output pixel (x, y) -> photo pixel: rotate about the centre, then move to the window.
    output_to_photo = np.array([[cos, -sin, cx - cos * cx + sin * cy + left + dx],
                                [sin, cos, cy - sin * cx - cos * cy + top + dy]])
    return cv2.warpAffine(photo, output_to_photo, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def average_frames(frames, gamma=None):
    """Mean of uint8 frames, rounded to uint8; with ``gamma``, averaged in linear light."""
    stack = np.stack(frames).astype(np.float64) / 255
    if gamma is None:
        mean = stack.mean(axis=0)
    else:
        mean = (stack**gamma).mean(axis=0)**(1 / gamma)
    return np.clip(np.round(mean * 255), 0, 255).astype(np.uint8)


def synthesize_pair(photo, rng, height, width, settings=ShakeSettings()):
    """A random window of ``photo`` (uint8 HWC): returns (sharp, blur, blur_gamma)."""
    margin = int(np.ceil(settings.max_extent)) + 2
    if photo.shape[0] < height + 2 * margin or photo.shape[1] < width + 2 * margin:
        raise ValueError(f'photo of {photo.shape[1]}x{photo.shape[0]} is too small for {width}x{height} frames '
                         f'with {margin} px of shake margin.')
    top = int(rng.integers(margin, photo.shape[0] - height - margin + 1))
    left = int(rng.integers(margin, photo.shape[1] - width - margin + 1))
    poses = shake_trajectory(rng, settings)
    frames = [render_view(photo, top, left, height, width, pose) for pose in poses]
    sharp = frames[len(frames) // 2]
    return sharp, average_frames(frames), average_frames(frames, GAMMA)
