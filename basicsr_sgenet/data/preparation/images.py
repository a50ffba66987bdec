"""Reading and checking the images of blur/sharp pairs.

Every image is decoded once before anything is written, so a truncated file or a size
mismatch stops the run with the file's name instead of leaving a half-written dataset.
"""
import cv2
import numpy as np

from basicsr_sgenet.data.preparation.pairs import raise_if_problems
from basicsr_sgenet.integration.errors import PreparationError


def read_image(path):
    """The image at ``path`` as BGR uint8 (H, W, 3), or PreparationError naming it."""
    try:
        with open(path, 'rb') as f:
            data = np.frombuffer(f.read(), np.uint8)
    except OSError as err:
        raise PreparationError(f'Cannot read {path}: {err.strerror or err}.') from None
    # IMREAD_UNCHANGED so 16-bit, grey or RGBA files are reported instead of silently converted.
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise PreparationError(f'Cannot decode {path}: it is empty, truncated or not an image.')
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise PreparationError(f'{path} is a {image.dtype} image with {channels} channel(s); '
                               'expected 8-bit RGB.')
    return image


def check_pair(pair):
    """(h, w, c) of a pair whose images both decode and have the same size."""
    blur, sharp = read_image(pair.blur_path), read_image(pair.sharp_path)
    if blur.shape != sharp.shape:
        raise PreparationError(f'Size mismatch: {pair.blur_path} is {blur.shape[1]}x{blur.shape[0]} but '
                               f'{pair.sharp_path} is {sharp.shape[1]}x{sharp.shape[0]} (width x height).')
    return blur.shape


def _check_pair_collecting_errors(pair):
    try:
        return (pair, check_pair(pair)), None
    except PreparationError as err:
        return None, str(err)


def check_pairs(pairs, map_fn=map, progress=None):
    """Decode every pair (``map_fn`` may be a process pool's ``imap``); returns {pair: shape}.

    All failures are collected and raised together, so one run reports every bad file.
    """
    shapes, problems = {}, []
    for result, problem in map_fn(_check_pair_collecting_errors, pairs):
        if problem:
            problems.append(problem)
        else:
            pair, shape = result
            shapes[pair] = shape
        if progress is not None:
            progress.update(1)
    raise_if_problems(problems, f'{len(problems)} of {len(pairs)} image pairs cannot be used')
    return shapes


def encode_png(image, compress_level):
    ok, encoded = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise RuntimeError('OpenCV failed to encode an image as PNG.')
    return encoded.tobytes()
