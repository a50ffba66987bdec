"""Synthetic restored/ground-truth pairs with a known misalignment, for the RealBlur metrics.

numpy only (no OpenCV), so the same pairs are made wherever the test runs and wherever
the authors' script ran to produce tests/data/realblur_reference.json; the JSON keeps a
hash of every pair, so a pair made differently fails loudly instead of being compared
with numbers made from another image.

The ground truth samples a smooth analytic colour scene (sinusoids, Gaussian blobs and a
soft-edged rectangle) on the pixel grid; the restored image samples the same scene
through a camera rotated by ``angle_deg`` about the centre and shifted by (dx, dy)
pixels, times ``gain``, plus Gaussian noise. Both are rounded to 8 bits and returned in
BGR order, as BasicSR hands images to its metrics.
"""
import hashlib

import numpy as np

HEIGHT, WIDTH = 96, 128

# name: (seed, dx, dy, angle_deg, gain, noise_sigma)
CASES = {
    'shift': (1, 1.5, -0.75, 0.0, 1.0, 2.0),
    'rotation': (2, 0.5, 0.25, 0.6, 1.0, 2.0),
    'darker': (3, -1.25, 1.0, 0.0, 0.85, 3.0),
    'aligned': (4, 0.0, 0.0, 0.0, 1.0, 4.0),
    'large_shift': (5, 3.0, 2.0, -0.4, 1.1, 1.0),
}


def _scene(rng):
    """A random smooth colour scene: f(x, y) -> H x W x 3 float values around 128."""
    waves = [(rng.uniform(10, 30, 3), rng.uniform(0.04, 0.2), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi))
             for _ in range(6)]
    blobs = [(rng.uniform(-70, 70, 3), rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), rng.uniform(3, 10))
             for _ in range(10)]
    box = (rng.uniform(20, 50), rng.uniform(60, 100), rng.uniform(15, 35), rng.uniform(55, 80), rng.uniform(-50, 50, 3))

    def f(x, y):
        out = np.full(x.shape + (3,), 128.0)
        for amplitude, frequency, direction, phase in waves:
            out += amplitude * np.sin(frequency * (x * np.cos(direction) + y * np.sin(direction)) + phase)[..., None]
        for amplitude, bx, by, sigma in blobs:
            out += amplitude * np.exp(-((x - bx)**2 + (y - by)**2) / (2 * sigma**2))[..., None]
        left, right, top, bottom, amplitude = box
        inside = (np.tanh(x - left) - np.tanh(x - right)) * (np.tanh(y - top) - np.tanh(y - bottom)) / 4
        return out + amplitude * inside[..., None]

    return f


def make_pair(seed, dx, dy, angle_deg, gain, noise_sigma):
    """(restored, ground truth): uint8 BGR H x W x 3."""
    rng = np.random.default_rng(seed)
    scene = _scene(rng)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    cx, cy = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
    c, s = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    xs = c * (x - cx) - s * (y - cy) + cx + dx
    ys = s * (x - cx) + c * (y - cy) + cy + dy
    gt = scene(x, y)
    restored = gain * scene(xs, ys) + rng.normal(0, noise_sigma, gt.shape)

    def to_bgr8(image):
        return np.ascontiguousarray(np.clip(np.round(image), 0, 255).astype(np.uint8)[..., ::-1])

    return to_bgr8(restored), to_bgr8(gt)


def pair_hash(restored, gt):
    return hashlib.sha256(restored.tobytes() + gt.tobytes()).hexdigest()
