"""Reading and writing the images a deblurring run processes, keeping what the user
expects to get back: the file name, the bit depth, grayscale-ness and the alpha channel.

The network sees RGB floats in [0, 1]:

* 8-bit and 16-bit images are scaled by 255 / 65535 and written back at the same depth
  (8-bit as PNG, JPEG included, so no second lossy compression; TIFF stays TIFF).
* Grayscale images are replicated to three channels; the output is written back as
  grayscale, the mean of the three output channels.
* An alpha channel is not deblurred (it is not part of the blurred photograph); it is
  passed through unchanged. (OpenCV reads a gray + alpha PNG as colour + alpha, so
  such files come back as RGBA with three equal channels.)

Nothing is lost on the way out: a result never replaces a file this run did not write
unless the user asks (``overwrite``; ``keep_existing`` skips such inputs instead, to
finish an interrupted run), and each result is written under a temporary name
first, so a kill -9 never leaves a truncated image under a result's name.
"""
import os
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from basicsr_sgenet.integration.atomic_files import atomic_write, leftover_writer, process_exists
from basicsr_sgenet.integration.errors import ImageReadError, InferenceError
from basicsr_sgenet.integration.output_folders import make_output_folder, output_folder_problem

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.pnm')
# Extensions written as they came in; everything else becomes PNG (lossless, 8 or 16 bit).
KEPT_EXTENSIONS = ('.png', '.tif', '.tiff')
MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass
class LoadedImage:
    path: str
    rgb: np.ndarray  # H x W x 3 float32 in [0, 1], RGB order
    dtype: np.dtype  # sample type of the file: uint8 or uint16
    grayscale: bool
    alpha: Optional[np.ndarray]  # H x W, the file's own sample type, or None


def list_input_images(path):
    """The image files named by ``path``: the file itself, or the files of a folder
    whose extension is a known image type (sorted, not recursive)."""
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise InferenceError(f'Input {path} does not exist')
    names = sorted(name for name in os.listdir(path) if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS)
    files = [os.path.join(path, name) for name in names if os.path.isfile(os.path.join(path, name))]
    if not files:
        raise InferenceError(f'Input folder {path} holds no images (looked for {", ".join(IMAGE_EXTENSIONS)})')
    return files


def output_path_for(input_path, output_dir):
    """Where the result of ``input_path`` goes: same file name in ``output_dir``, with a
    .png extension unless the input is PNG or TIFF."""
    stem, ext = os.path.splitext(os.path.basename(input_path))
    if ext.lower() not in KEPT_EXTENSIONS:
        ext = '.png'
    return os.path.join(output_dir, stem + ext)


def plan_outputs(output_dir, input_paths, overwrite=False, keep_existing=False):
    """``[(input, output path)]`` for the inputs to deblur, refusing, before anything is
    written, set-ups that would lose data or fail late: an output folder that cannot be
    written, results that would replace their own inputs, two inputs mapping to one output
    name, and any result name already taken by a file, unless ``overwrite`` (replace it)
    or ``keep_existing`` (leave it and skip that input). Creates nothing."""
    problem = output_folder_problem(output_dir)
    if problem:
        raise InferenceError(f'Output folder {problem}')
    outputs = [output_path_for(path, output_dir) for path in input_paths]
    seen = {}
    for source, target in zip(input_paths, outputs):
        if os.path.abspath(target) == os.path.abspath(source) or (
                os.path.exists(target) and os.path.samefile(target, source)):
            raise InferenceError(f'Writing to {output_dir} would overwrite the input {source}; choose another '
                                 'output folder')
        if target in seen:
            raise InferenceError(f'{seen[target]} and {source} would both be written to {target}; rename one '
                                 'or process them separately')
        seen[target] = source
    taken = [target for target in outputs if os.path.lexists(target)]
    folders = [target for target in taken if os.path.isdir(target)]
    if folders:
        raise InferenceError(f'{folders[0]} is a folder, so the result of {seen[folders[0]]} cannot be written '
                             'there; choose another output folder')
    if taken and not (overwrite or keep_existing):
        others = f' (and {len(taken) - 1} more of the {len(outputs)} result names)' if len(taken) > 1 else ''
        raise InferenceError(f'{taken[0]}{others} already exists; pass --overwrite to replace it, --skip-existing '
                             'to keep it and deblur the rest, or choose another output folder')
    if keep_existing:
        return [(source, target) for source, target in zip(input_paths, outputs) if target not in taken]
    return list(zip(input_paths, outputs))


def create_output_dir(output_dir):
    """Create ``output_dir`` (once everything else has been checked); returns the folders
    created, for ``remove_if_empty`` should nothing be written."""
    try:
        return make_output_folder(output_dir)
    except OSError as err:
        raise InferenceError(f'Output folder {output_dir} cannot be created ({err.strerror or err})') from None


def remove_interrupted_writes(output_paths):
    """Delete the temporary files that a killed earlier run left while writing one of
    ``output_paths`` (``.<name>.tmp-<pid>`` of a process that no longer exists)."""
    by_folder = {}
    for path in output_paths:
        by_folder.setdefault(os.path.dirname(path) or '.', set()).add(os.path.basename(path))
    for folder, names in by_folder.items():
        for entry in os.listdir(folder):
            leftover = leftover_writer(entry)
            if leftover and leftover[0] in names and not process_exists(leftover[1]):
                os.remove(os.path.join(folder, entry))


def read_image(path):
    """Load ``path`` as a LoadedImage, or raise ImageReadError naming the file."""
    try:
        data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise ImageReadError(f'{path} cannot be read as an image ({err})') from None
    if data is None:
        raise ImageReadError(f'{path} cannot be read as an image (unsupported or corrupt file)')
    if data.dtype not in MAX_VALUE:
        raise ImageReadError(f'{path} has {data.dtype} samples; only 8-bit and 16-bit images are supported')
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    alpha = None
    if data.ndim == 2:
        gray, color = data, None
    elif data.shape[2] == 3:
        gray, color = None, data
    elif data.shape[2] == 4:
        gray, color, alpha = None, data[..., :3], data[..., 3]
    else:
        raise ImageReadError(f'{path} has {data.shape[2]} channels; expected 1 (gray), 3 (colour) '
                             'or 4 (colour + alpha)')
    scale = MAX_VALUE[data.dtype]
    if color is None:
        rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32) / scale
    else:
        rgb = cv2.cvtColor(color, cv2.COLOR_BGR2RGB).astype(np.float32) / scale
    return LoadedImage(path=path, rgb=rgb, dtype=data.dtype, grayscale=color is None,
                       alpha=None if alpha is None else alpha.copy())


def to_file_samples(rgb, source):
    """Turn the network's RGB float output into the array ``cv2.imwrite`` writes for an
    image shaped like ``source``: same sample type, gray/alpha layout, BGR order."""
    scale = MAX_VALUE[source.dtype]
    rgb = np.clip(rgb, 0, 1)
    if source.grayscale:
        channels = [rgb.mean(axis=2)]
    else:
        channels = [rgb[..., 2], rgb[..., 1], rgb[..., 0]]  # BGR for OpenCV
    samples = [np.round(channel * scale).astype(source.dtype) for channel in channels]
    if source.alpha is not None:
        samples.append(source.alpha)
    return samples[0] if len(samples) == 1 else np.stack(samples, axis=2)


def write_image(path, rgb, source, overwrite=False):
    """Write the deblurred ``rgb`` (H x W x 3 float) to ``path`` in ``source``'s format.

    The encoded file goes to a temporary name first and then takes its final name, so a
    kill -9 never leaves a truncated image under a result's name; without ``overwrite``
    a file that took the name meanwhile is never replaced."""
    samples = to_file_samples(rgb, source)
    try:
        encoded, data = cv2.imencode(os.path.splitext(path)[1], samples)
    except cv2.error as err:
        raise InferenceError(f'Cannot write {path} ({err})') from None
    if not encoded:
        raise InferenceError(f'Cannot write {path} (OpenCV could not encode it)')
    try:
        with atomic_write(path, replace=overwrite, durable=False) as f:
            f.write(data.tobytes())
    except FileExistsError:
        raise InferenceError(f'{path} was created by someone else while deblurring; it was not replaced (pass '
                             '--overwrite to replace it)') from None
    except OSError as err:
        raise InferenceError(f'Cannot write {path} ({err.strerror or err})') from None


