"""What the web page runs, without the page: the models a user lists, each run on each
image by the deblur CLI's own code.

Every model is turned into the deblur CLI's arguments (``deblur.build_parser``) and goes
through the CLI's functions: ``plan_from_args`` (backend, precision, memory format),
``network_spec_from_args`` (network, weights from a file or URL), ``build_restorer``,
``restore_image`` (tiling) and ``write_image`` (bit depth, grayscale, alpha, file
name). So a result from the page is the file ``python -m basicsr_sgenet.deblur`` writes
for the same input, weights and settings, bit for bit.

A model is one line of text:

* ``ARCH [JSON arch arguments] WEIGHTS``: a registered arch, e.g.
  ``NAFNet {"width": 32} https://host/nafnet.pth#sha256=...``;
* ``OPTIONS.yml [WEIGHTS]``: an option file's ``network_g`` (and its
  ``path.pretrain_network_g`` unless WEIGHTS is given).
"""
import json
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional

from basicsr_sgenet import deblur
from basicsr_sgenet.integration.errors import InferenceError, UserError, first_line
from basicsr_sgenet.inference.backends import build_restorer, plan_from_args
from basicsr_sgenet.inference.image_io import output_path_for, read_image, write_image
from basicsr_sgenet.inference.runtime import resolve_device
from basicsr_sgenet.inference.tiling import check_tile_settings, count_tiles
from basicsr_sgenet.integration.weights import fetch_weights

OPTION_FILE_EXTENSIONS = ('.yml', '.yaml')
LOGGER = logging.getLogger(__name__)


@dataclass
class Model:
    """One line of the model list and the deblur CLI flags it stands for."""
    text: str
    flags: List[str]


@dataclass
class Settings:
    """The page's run settings: the deblur CLI's --device, --precision, --tile, --tile-overlap."""
    device: str = 'auto'
    precision: str = 'auto'
    tile: int = 0
    tile_overlap: int = 64

    def flags(self):
        return [f'--device={self.device}', f'--precision={self.precision}', f'--tile={int(self.tile)}',
                f'--tile-overlap={int(self.tile_overlap)}']


@dataclass
class Result:
    """One model on one image: the file written (as the CLI writes it) or why not."""
    model: Model
    output_path: Optional[str] = None
    seconds: float = 0.0
    device: str = ''
    plan: str = ''
    error: Optional[str] = None


@dataclass
class ImageResults:
    """One input image (its name as uploaded) and each model's result, in model order."""
    path: str
    name: str
    image: object = None  # the LoadedImage, or None if it cannot be read
    error: Optional[str] = None
    results: List[Result] = field(default_factory=list)


def parse_model_line(line, number):
    """Model for one line of the list (``number`` counts from 1, for messages)."""
    text = line.strip()
    first, _, rest = text.partition(' ')
    rest = rest.strip()
    # name=value flags: a value starting with "-" is never taken for a flag
    if first.lower().endswith(OPTION_FILE_EXTENSIONS):
        return Model(text, [f'--opt={first}'] + ([f'--weights={rest}'] if rest else []))
    flags = [f'--arch={first}']
    if rest.startswith('{'):
        try:
            arch_args, end = json.JSONDecoder().raw_decode(rest)
        except json.JSONDecodeError as err:
            raise InferenceError(f'Model line {number} ({text}): the arch arguments are not valid JSON '
                                 f'({err.msg} at character {err.pos + 1})') from None
        flags.append(f'--arch-args={json.dumps(arch_args)}')
        rest = rest[end:].strip()
    return Model(text, flags + ([f'--weights={rest}'] if rest else []))


def parse_models(text):
    """The models of the page's list: one per line; blank lines and ``#`` comments skipped."""
    lines = [(number, line) for number, line in enumerate((text or '').splitlines(), 1)
             if line.strip() and not line.strip().startswith('#')]
    if not lines:
        raise InferenceError('Name at least one model: a line "ARCH [JSON arguments] WEIGHTS" or "OPTIONS.yml"')
    return [parse_model_line(line, number) for number, line in lines]


def cli_arguments(model, settings, image_path, output_dir):
    """The deblur CLI's parsed arguments for ``model`` with ``settings`` on one image."""
    argv = [f'--input={image_path}', f'--output={output_dir}', *model.flags, *settings.flags(), '--quiet',
            '--overwrite']
    return deblur.build_parser().parse_args(argv)


class Restorers:
    """The restorers of recent models, built once (with their weights downloaded once)
    and kept for the next images and runs: a page is used to try images on models."""

    def __init__(self, keep=4):
        self.keep = keep
        self._built = OrderedDict()

    def get(self, args):
        """(Plan, restorer, size multiple) for the CLI arguments ``args``, as the CLI builds them."""
        plan = plan_from_args(args, resolve_device(args.device))
        spec = deblur.network_spec_from_args(args)  # reads an option file, fetches a URL (once)
        # A weights file replaced since (a training run's net_g_latest.pth) is loaded again.
        weights = fetch_weights(spec.weights, progress=False)
        stat = os.stat(weights)
        key = (spec.arch, json.dumps(spec.kwargs, sort_keys=True), os.path.abspath(weights), stat.st_mtime_ns,
               stat.st_size, spec.param_key, plan.describe())
        if key in self._built:
            self._built.move_to_end(key)
            return self._built[key]
        restorer, multiple = build_restorer(plan, spec)
        self._built[key] = (plan, restorer, multiple)
        while len(self._built) > self.keep:
            self._built.popitem(last=False)
        return self._built[key]


def readable(error, image=None):
    """The message of an error for the page: a UserError's own sentence (with an uploaded
    file's temporary folder left out), anything else as one line pointing to the console."""
    if isinstance(error, UserError):
        text = str(error)
    else:
        LOGGER.exception('Unexpected error on the page')
        text = f'Unexpected error ({type(error).__name__}: {first_line(error)}); the details are in the console'
    if image is not None:
        text = text.replace(image.path, image.name)
    return text


def count_steps(images, models):
    return max(1, len(images) * len(models))


def run(restorers, image_paths, models, settings, work_dir, on_progress=None):
    """Each model on each image; returns [ImageResults]. ``on_progress(fraction, text)``
    follows tiles. A model or image that fails gets its message; the others still run."""
    names = [os.path.basename(path) for path in image_paths]
    images = [ImageResults(path, name) for path, name in zip(image_paths, names)]
    steps, done = count_steps(images, models), 0
    for index, entry in enumerate(images):
        try:
            entry.image = read_image(entry.path)
        except UserError as err:
            entry.error = readable(err, entry)
            done += len(models)
            continue
        for number, model in enumerate(models):
            output_dir = os.path.join(work_dir, f'image{index}', f'model{number}')
            entry.results.append(run_one(restorers, entry, model, settings, output_dir,
                                         lambda fraction, text, base=done: on_progress and on_progress(
                                             (base + fraction) / steps, text)))
            done += 1
    if on_progress:
        on_progress(1.0, 'done')
    return images


def run_one(restorers, entry, model, settings, output_dir, on_progress):
    """``model`` on the image of ``entry`` (an ImageResults); a Result with a message on failure."""
    result = Result(model)
    try:
        args = cli_arguments(model, settings, entry.path, output_dir)
        on_progress(0.0, f'{model.text}: loading')
        plan, restorer, multiple = restorers.get(args)
        result.device, result.plan = str(plan.device), plan.describe()
        height, width = entry.image.rgb.shape[:2]
        tiles = 1
        if args.tile:
            check_tile_settings(args.tile, args.tile_overlap, multiple)
            tiles = count_tiles(height, width, args.tile, args.tile_overlap, multiple)
        finished = [0]

        def tile_done():
            finished[0] += 1
            on_progress(finished[0] / tiles, f'{model.text} on {entry.name}: tile {finished[0]}/{tiles}')

        on_progress(0.0, f'{model.text} on {entry.name}')
        start = time.perf_counter()
        restored = deblur.restore_image(restorer, entry.image, args, multiple, tile_done)
        result.seconds = time.perf_counter() - start
        os.makedirs(output_dir, exist_ok=True)
        result.output_path = output_path_for(entry.path, output_dir)
        write_image(result.output_path, restored, entry.image, overwrite=True)
    except Exception as err:  # noqa: BLE001  (the page shows a message and keeps serving)
        result.error = readable(err, entry)
    return result
