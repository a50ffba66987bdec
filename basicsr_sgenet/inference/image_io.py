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

What a camera or editor puts beside the pixels:

* EXIF orientation (phone photos are stored sideways with a tag saying how to turn
  them): applied to the pixels when reading, so the result is upright as viewers show
  the input, and carries no orientation tag.
* An ICC colour profile (phones shoot Display P3, editors embed Adobe RGB): carried into
  PNG results, so they display in the input's colours. TIFF results are written without
  it. Other EXIF data (camera, GPS position, date) is not copied into results.
* A truncated JPEG, which OpenCV decodes without an error (grey below the cut), is
  refused as damaged (Pillow decodes it to the end to tell); truncated PNG, TIFF and
  WebP files OpenCV already refuses.

Nothing is lost on the way out: a result never replaces a file that deblur did not
write (the rule in ``integration/own_outputs.py``): ``overwrite`` replaces only earlier
results, which ``.deblur-results.json`` in the output folder lists with their SHA-256
(a result edited since is the user's); ``keep_existing`` skips the inputs whose
results are there, to finish an interrupted run. Each result is written under a
temporary name first, so a kill -9 never leaves a truncated image under a result's name.
"""
import hashlib
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from basicsr_sgenet.integration.atomic_files import atomic_write, leftover_writer, process_exists
from basicsr_sgenet.integration.errors import ImageReadError, InferenceError
from basicsr_sgenet.integration.output_folders import make_output_folder, output_folder_problem
from basicsr_sgenet.integration.own_outputs import overlap_problem

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm', '.pnm')
# Extensions written as they came in; everything else becomes PNG (lossless, 8 or 16 bit).
KEPT_EXTENSIONS = ('.png', '.tif', '.tiff')
MAX_VALUE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# deblur's record of the results it wrote into an output folder: {file name: sha256}.
RESULTS_RECORD = '.deblur-results.json'
EXIF_ORIENTATION = 0x0112


@dataclass
class LoadedImage:
    path: str
    rgb: np.ndarray  # H x W x 3 float32 in [0, 1], RGB order
    dtype: np.dtype  # sample type of the file: uint8 or uint16
    grayscale: bool
    alpha: Optional[np.ndarray]  # H x W, the file's own sample type, or None
    icc_profile: Optional[bytes] = None  # the input's colour profile, carried into PNG results
    orientation: int = 1  # the EXIF orientation applied to the pixels (1: none)


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


def read_results_record(output_dir):
    """{file name: sha256} of the results deblur wrote into ``output_dir`` (empty when
    there is no record, or it is damaged: then nothing there counts as deblur's)."""
    try:
        with open(os.path.join(output_dir, RESULTS_RECORD)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def is_earlier_result(path):
    """Whether ``path`` is a result deblur wrote, unchanged since."""
    expected = read_results_record(os.path.dirname(path) or '.').get(os.path.basename(path))
    if not expected or not os.path.isfile(path):
        return False
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest() == expected


def record_result(path, digest):
    """Add ``path`` (written with content hash ``digest``) to its folder's results record."""
    folder = os.path.dirname(path) or '.'
    record = read_results_record(folder)
    record[os.path.basename(path)] = digest
    record_path = os.path.join(folder, RESULTS_RECORD)
    try:
        with atomic_write(record_path, 'w', durable=False) as f:
            json.dump(record, f, indent=0, sort_keys=True)
    except OSError as err:
        raise InferenceError(f'Cannot write {record_path} ({err.strerror or err})') from None


def plan_outputs(output_dir, input_paths, overwrite=False, keep_existing=False, input_root=None):
    """``[(input, output path)]`` for the inputs to deblur, refusing, before anything is
    written, set-ups that would lose data or fail late: an output folder that cannot be
    written or overlaps the input (``input_root``: the -i file or folder), results that
    would replace their own inputs, two inputs mapping to one output name, a result name
    taken by a file deblur did not write (never replaced), and one taken by an earlier
    result unless ``overwrite`` (replace it) or ``keep_existing`` (leave it and skip that
    input). Creates nothing."""
    problem = output_folder_problem(output_dir)
    if problem:
        raise InferenceError(f'Output folder {problem}')
    problem = overlap_problem(output_dir, [input_root] if input_root else input_paths, f'-o {output_dir}')
    if problem:
        raise InferenceError(problem)
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
    foreign = [target for target in taken if not is_earlier_result(target)]
    if foreign and not keep_existing:
        others = f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''
        raise InferenceError(f'{foreign[0]}{others} already exists and is not an unchanged result of an earlier '
                             f'deblur run ({RESULTS_RECORD} there does not list it); it is never replaced: move it, '
                             'choose another output folder, or pass --skip-existing to keep it and deblur the rest')
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


def truncation_problem(data):
    """Why the encoded image ``data`` (bytes) is damaged although OpenCV may decode it,
    or None. ``cv2.imread`` returns a truncated JPEG with grey below the cut (it only
    warns on stderr); Pillow's decoder raises instead, so a JPEG is decoded by Pillow to
    the end, whatever OpenCV does."""
    if not data.startswith(b'\xff\xd8'):  # PNG, TIFF, WebP: OpenCV returns None when cut short
        return None
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except OSError as err:
        if 'truncated' in str(err):
            return 'it is truncated (the JPEG data ends before the image does)'
    return None


def _file_metadata(data):
    """(EXIF orientation 1-8, ICC profile bytes or None) as Pillow reads them, or (1, None)."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
            icc_profile = image.info.get('icc_profile') or None
    except Exception:  # noqa: BLE001  (metadata Pillow cannot parse: the pixels are what counts)
        return 1, None
    return (orientation if orientation in range(1, 9) else 1), icc_profile


def upright(data, orientation):
    """The pixels as a viewer shows an image with this EXIF orientation (as Pillow's
    ImageOps.exif_transpose turns it)."""
    if orientation in (5, 6, 7, 8):
        data = data.swapaxes(0, 1)  # transpose; then flip to get the rotation
    flips = {2: (1,), 3: (0, 1), 4: (0,), 6: (1,), 7: (0, 1), 8: (0,)}.get(orientation, ())
    for axis in flips:
        data = np.flip(data, axis)
    return np.ascontiguousarray(data)


def read_image(path):
    """Load ``path`` as a LoadedImage (upright, see the module notes), or raise
    ImageReadError naming the file."""
    try:
        with open(path, 'rb') as f:
            encoded = f.read()
    except OSError as err:
        raise ImageReadError(f'{path} cannot be read ({err.strerror or err})') from None
    try:
        data = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED) if encoded else None
    except cv2.error as err:
        raise ImageReadError(f'{path} cannot be read as an image ({err})') from None
    problem = truncation_problem(encoded)
    if problem:
        raise ImageReadError(f'{path} is damaged: {problem}')
    if data is None:
        raise ImageReadError(f'{path} cannot be read as an image (unsupported or corrupt file)')
    if data.dtype not in MAX_VALUE:
        raise ImageReadError(f'{path} has {data.dtype} samples; only 8-bit and 16-bit images are supported')
    orientation, icc_profile = _file_metadata(encoded)
    data = upright(data, orientation)
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
                       alpha=None if alpha is None else alpha.copy(), icc_profile=icc_profile,
                       orientation=orientation)


def png_with_icc_profile(png, profile):
    """``png`` (bytes) with an iCCP chunk holding ``profile`` right after IHDR, as the PNG
    specification places it (before the image data)."""
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length + type, IHDR data, CRC
    body = b'ICC profile\x00\x00' + zlib.compress(profile)  # name, separator, compression method 0
    chunk = struct.pack('>I', len(body)) + b'iCCP' + body + struct.pack('>I', zlib.crc32(b'iCCP' + body))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


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
    """Write the deblurred ``rgb`` (H x W x 3 float) to ``path`` in ``source``'s format
    (with its ICC profile in a PNG), and list it in the folder's results record.

    The encoded file goes to a temporary name first and then takes its final name, so a
    kill -9 never leaves a truncated image under a result's name; without ``overwrite``
    a file that took the name meanwhile is never replaced."""
    samples = to_file_samples(rgb, source)
    extension = os.path.splitext(path)[1]
    try:
        encoded, data = cv2.imencode(extension, samples)
    except cv2.error as err:
        raise InferenceError(f'Cannot write {path} ({err})') from None
    if not encoded:
        raise InferenceError(f'Cannot write {path} (OpenCV could not encode it)')
    data = data.tobytes()
    if source.icc_profile and extension.lower() == '.png':
        data = png_with_icc_profile(data, source.icc_profile)
    try:
        with atomic_write(path, replace=overwrite, durable=False) as f:
            f.write(data)
    except FileExistsError:
        raise InferenceError(f'{path} was created by someone else while deblurring; it was not replaced') from None
    except OSError as err:
        raise InferenceError(f'Cannot write {path} ({err.strerror or err})') from None
    record_result(path, hashlib.sha256(data).hexdigest())
