"""Deblur images with a trained SGENet (or any registered 1x BasicSR arch).

    python -m basicsr_sgenet.deblur -i blurry.png -o out/ --weights net_g_latest.pth
    python -m basicsr_sgenet.deblur -i photos/ -o out/ --opt options/test_SGENet_GoPro.yml \\
        --tile 512 --tile-overlap 64 --device cuda --precision fp16
    python -m basicsr_sgenet.deblur -i photos/ -o out/ --model sgenet.onnx   # ONNX Runtime (basicsr_sgenet.export)

The network is the paper-size SGENet unless ``--arch``/``--arch-args`` or ``--opt``
(an option file's ``network_g``; its ``path.pretrain_network_g`` then supplies the
weights unless ``--weights`` is given) say otherwise; ``--model`` runs an exported ONNX
file instead. By default the precision and memory format are the fastest safe ones for
this machine (``inference/backends/``). Output files keep their names and bit depth,
are upright as viewers show the input (EXIF orientation) and keep its ICC profile in
PNG (see ``inference/image_io.py``). A file deblur did not write is never replaced,
and the output folder may not be, contain or lie inside the input. Earlier results in
the output folder stop the run before any work, naming one, unless ``--overwrite``
(replace them: only unchanged results of earlier runs, as ``.deblur-results.json``
lists them) or ``--skip-existing`` (keep them and deblur the other inputs: finishes an
interrupted run) is given. Ctrl-C stops with exit status 130, every result written so
far complete.
Everything that can be checked (arguments, weights, inputs, output names, that the
output folder can be written) is checked before the folder is created.

Exit status: 0 when every readable image was deblurred (unreadable ones are skipped with
a warning), 2 for bad arguments or set-up, or when no input could be read (one
``error:`` line).
"""
import argparse
import os
import sys

if __name__ == '__main__' and not __package__:
    # Run as a file: make the repository root importable instead of this package's folder.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from basicsr_sgenet.integration.errors import InferenceError, Interrupted, first_line, status_or_user_error  # noqa: E402
from basicsr_sgenet.inference.backends import BACKENDS, PRECISION_CHOICES, build_restorer, plan_from_args  # noqa: E402
from basicsr_sgenet.inference.image_io import (  # noqa: E402
    ImageReadError, create_output_dir, list_input_images, plan_outputs, read_image, remove_interrupted_writes,
    write_image)
from basicsr_sgenet.inference.network import network_spec_from_args  # noqa: E402
from basicsr_sgenet.inference.runtime import resolve_device  # noqa: E402
from basicsr_sgenet.inference.tiling import (  # noqa: E402
    AUTO_TILE, check_tile_settings, count_tiles, tile_for_image, tile_overlap_warning, whole_image_pixel_budget)
from basicsr_sgenet.integration.output_folders import remove_if_empty  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        prog='python -m basicsr_sgenet.deblur', description='Deblur images with SGENet (any size, CPU or GPU).')
    parser.add_argument('-i', '--input', required=True, help='an image file or a folder of images')
    parser.add_argument('-o', '--output', required=True, help='folder for the results (created if missing)')
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument('--overwrite', action='store_true',
                          help='replace files in the output folder that have the name of a result (default: '
                          'stop before any work, naming the first such file)')
    existing.add_argument('--skip-existing', action='store_true',
                          help='keep files in the output folder that have the name of a result and skip their '
                          'inputs (to finish an interrupted run)')
    parser.add_argument('--weights', help='trained weights (.pth): a BasicSR checkpoint or a bare state dict; a '
                        'file or an https:// URL (downloaded once; optional #sha256=<hex> pin)')
    parser.add_argument('--param-key', help='checkpoint entry to load (default: params_ema, else params)')
    parser.add_argument('--opt', help='BasicSR option file whose network_g (and path.pretrain_network_g) to use')
    parser.add_argument('--arch', default=None, help='registered arch name (default SGENet)')
    parser.add_argument('--arch-args', default=None,
                        help='JSON keyword arguments of the arch, e.g. \'{"channels": [48, 60, 72]}\' '
                        '(default: the paper configuration)')
    parser.add_argument('--tile', type=int, default=None,
                        help='tile size in pixels (0: every image whole). Default: whole images up to the '
                        'network\'s pixel budget (see inference/tiling.py: 8.3 MP, one 4K frame; Restormer 4.0 MP), '
                        f'{AUTO_TILE}-pixel tiles above it')
    parser.add_argument('--tile-overlap', type=int, default=64,
                        help='overlap between neighbouring tiles in pixels (default 64)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N (default auto)')
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='pytorch, or onnxruntime/openvino on an exported --model (default auto: openvino if '
                        'installed, else onnxruntime, when --model is given; pytorch otherwise)')
    parser.add_argument('--model', help='an ONNX file from python -m basicsr_sgenet.export (for --backend '
                        'onnxruntime/openvino)')
    parser.add_argument('--precision', default='auto', choices=PRECISION_CHOICES,
                        help='compute precision (default auto: bf16 on CPUs with native bf16, else fp32; '
                        'fp16: CUDA only; onnxruntime: fp32 only)')
    parser.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=None,
                        help='channels-last memory format (default: on for the CPU, off for CUDA)')
    parser.add_argument('--compile', action='store_true', help='torch.compile the network (slow first image)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def deblur_files(args):
    """Run the CLI; returns the exit status. Raises InferenceError for bad set-ups."""
    # Check everything that can be checked before the (slow) network build.
    device = resolve_device(args.device)
    plan = plan_from_args(args, device)
    if args.tile:
        check_tile_settings(args.tile, args.tile_overlap)  # the size grid is checked once the network exists
    spec = network_spec_from_args(args) if plan.backend == 'pytorch' else None
    inputs = list_input_images(args.input)
    jobs = plan_outputs(args.output, inputs, args.overwrite, args.skip_existing, input_root=args.input)
    kept = len(inputs) - len(jobs)
    if not jobs:
        print(f'Nothing to do: the results of all {len(inputs)} input image(s) are already in {args.output} '
              '(--skip-existing)')
        return 0

    restorer, multiple = build_restorer(plan, spec)
    args.pixel_budget = whole_image_pixel_budget(spec.arch if spec else None)
    if args.tile or args.tile is None:
        check_tile_settings(args.tile or AUTO_TILE, args.tile_overlap, multiple)
        warning = tile_overlap_warning(args.tile_overlap)  # only once the run is going to happen
        if warning and args.tile:
            print(f'warning: {warning}', file=sys.stderr)
    if not args.quiet:
        print(f'Running {plan.describe()}', file=sys.stderr)

    created = create_output_dir(args.output)  # only now: every check above has passed
    remove_interrupted_writes([target for _, target in jobs])
    done, skipped = 0, []
    try:
        with tqdm(total=len(jobs), desc='deblur', unit='img', disable=args.quiet) as images_bar:
            for source_path, target_path in jobs:
                try:
                    image = read_image(source_path)
                except ImageReadError as err:
                    tqdm.write(f'warning: skipping {err}', file=sys.stderr)
                    skipped.append(source_path)
                else:
                    write_image(target_path, restore_image(restorer, image, args, multiple), image, args.overwrite)
                    done += 1
                images_bar.update()
    except KeyboardInterrupt:
        left = (f'{done} of {len(jobs)} results are in {args.output}, each complete; run the same command with '
                '--skip-existing to deblur the rest') if done else 'no result was written'
        raise Interrupted(left) from None
    finally:
        if not done:  # stopped or failed before the first result: leave no empty folder behind
            remove_if_empty(created)
    if not done:
        more = f' and {len(skipped) - 1} more; see the warnings above' if len(skipped) > 1 else ''
        raise InferenceError(f'No input image could be read ({skipped[0]}{more}); nothing was written')
    print(f'Deblurred {done} image(s) into {args.output}' + (f'; skipped {len(skipped)} unreadable' if skipped else '')
          + (f'; kept {kept} existing result(s)' if kept else ''))
    return 0


def restore_image(restorer, image, args, multiple, on_tile=None):
    """Deblur one LoadedImage, with a per-tile progress bar when tiled (and ``on_tile()``
    called after each tile: the web page's progress); running out of memory becomes an
    error that says how to avoid it."""
    height, width = image.rgb.shape[:2]
    tile = tile_for_image(height, width, args.tile, getattr(args, 'pixel_budget', None))
    if tile and not args.tile and not args.quiet:
        tqdm.write(f'{image.path} ({height}x{width}) is above the whole-image budget of '
                   f'{args.pixel_budget / 1e6:.1f} MP: deblurring it in {tile}-pixel tiles (--tile 0: whole)',
                   file=sys.stderr)
    tiles = count_tiles(height, width, tile, args.tile_overlap, multiple) if tile else 1
    try:
        with tqdm(total=tiles, desc=os.path.basename(image.path), unit='tile', leave=False,
                  disable=args.quiet or tiles == 1) as tiles_bar:

            def tile_done():
                tiles_bar.update()
                if on_tile:
                    on_tile()

            return restorer.restore(image.rgb, tile, args.tile_overlap, multiple, tile_done)
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError too
        where = f'{tile}x{tile} tiles' if tile else 'the whole image at once'
        if is_index_limit_error(err):
            # Not memory: one intermediate tensor of the whole image has more elements than
            # the kernel's 32-bit indexing allows (Restormer above ~4.2 MP).
            raise InferenceError(f'{image.path} ({height}x{width}) is too large for this network {where} '
                                 f'({first_line(err)[:100]}); use --tile 512') from None
        if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in str(err):
            raise
        raise InferenceError(f'Out of memory deblurring {image.path} ({height}x{width}) with {where} on '
                             f'{restorer.device}; use a smaller --tile (e.g. 512 or 256)') from None


def is_index_limit_error(err):
    """Whether ``err`` is a kernel refusing a tensor too large for 32-bit index math."""
    text = str(err)
    return any(marker in text for marker in ('32-bit index', '32bit index', 'canUse32BitIndexMath', 'INT_MAX',
                                             'int32 range', 'exceeds 2^31'))


def main(argv=None):
    # InferenceError, or DependencyError for a missing extra: one line, status 2
    return status_or_user_error(deblur_files, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
