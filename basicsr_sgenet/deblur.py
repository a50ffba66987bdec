"""Deblur images with a trained SGENet (or any registered 1x BasicSR arch).

    python -m basicsr_sgenet.deblur -i blurry.png -o out/ --weights net_g_latest.pth
    python -m basicsr_sgenet.deblur -i photos/ -o out/ --opt options/test_SGENet_GoPro.yml \\
        --tile 512 --tile-overlap 64 --device cuda --precision fp16
    python -m basicsr_sgenet.deblur -i photos/ -o out/ --model sgenet.onnx   # ONNX Runtime (basicsr_sgenet.export)

The network is the paper-size SGENet unless ``--arch``/``--arch-args`` or ``--opt``
(an option file's ``network_g``; its ``path.pretrain_network_g`` then supplies the
weights unless ``--weights`` is given) say otherwise; ``--model`` runs an exported ONNX
file instead. By default the precision and memory format are the fastest safe ones for
this machine (``inference/backends.py``). Output files keep their names and bit depth
(see ``inference/image_io.py``). Files already in the output folder are never
replaced: the run stops before any work, naming one, unless ``--overwrite`` (replace
them) or ``--skip-existing`` (keep them and deblur the other inputs: finishes an
interrupted run) is given.
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

from basicsr_sgenet.errors import InferenceError, status_or_user_error  # noqa: E402
from basicsr_sgenet.inference.backends import BACKENDS, PRECISION_CHOICES, build_restorer, plan_from_args  # noqa: E402
from basicsr_sgenet.inference.image_io import (  # noqa: E402
    ImageReadError, create_output_dir, list_input_images, plan_outputs, read_image, remove_interrupted_writes,
    write_image)
from basicsr_sgenet.inference.network import (  # noqa: E402
    DEFAULT_ARCH, NetworkSpec, parse_arch_args, spec_from_option_file)
from basicsr_sgenet.inference.runtime import resolve_device  # noqa: E402
from basicsr_sgenet.inference.tiling import check_tile_settings, count_tiles, tile_overlap_warning  # noqa: E402
from basicsr_sgenet.output_folders import remove_if_empty  # noqa: E402
from basicsr_sgenet.weights import fetch_weights, is_url  # noqa: E402


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
    parser.add_argument('--tile', type=int, default=0,
                        help='tile size in pixels for large images (0: whole image at once)')
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


def network_spec_from_args(args):
    if args.opt:
        if args.arch or args.arch_args:
            raise InferenceError('--opt already names the network; drop --arch/--arch-args or --opt')
        spec = spec_from_option_file(args.opt)
    else:
        spec = NetworkSpec(arch=args.arch or DEFAULT_ARCH, kwargs=parse_arch_args(args.arch_args))
    spec.weights = args.weights or spec.weights
    spec.param_key = args.param_key or spec.param_key
    if not spec.weights:
        raise InferenceError('No weights given: pass --weights, or an --opt whose path.pretrain_network_g is set')
    if is_url(spec.weights):
        # downloaded (once) now, so a bad URL stops the run before any work
        fetch_weights(spec.weights, progress=not getattr(args, 'quiet', False))
    elif not os.path.isfile(spec.weights):
        origin = '--weights' if args.weights else f'path.pretrain_network_g in {args.opt}'
        raise InferenceError(f'Weights file {spec.weights} does not exist (from {origin})')
    return spec


def deblur_files(args):
    """Run the CLI; returns the exit status. Raises InferenceError for bad set-ups."""
    # Check everything that can be checked before the (slow) network build.
    device = resolve_device(args.device)
    plan = plan_from_args(args, device)
    if args.tile:
        check_tile_settings(args.tile, args.tile_overlap)  # the size grid is checked once the network exists
    spec = network_spec_from_args(args) if plan.backend == 'pytorch' else None
    inputs = list_input_images(args.input)
    jobs = plan_outputs(args.output, inputs, args.overwrite, args.skip_existing)
    kept = len(inputs) - len(jobs)
    if not jobs:
        print(f'Nothing to do: the results of all {len(inputs)} input image(s) are already in {args.output} '
              '(--skip-existing)')
        return 0

    restorer, multiple = build_restorer(plan, spec)
    if args.tile:
        check_tile_settings(args.tile, args.tile_overlap, multiple)
        warning = tile_overlap_warning(args.tile_overlap)  # only once the run is going to happen
        if warning:
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
    tiles = count_tiles(height, width, args.tile, args.tile_overlap, multiple) if args.tile else 1
    try:
        with tqdm(total=tiles, desc=os.path.basename(image.path), unit='tile', leave=False,
                  disable=args.quiet or tiles == 1) as tiles_bar:

            def tile_done():
                tiles_bar.update()
                if on_tile:
                    on_tile()

            return restorer.restore(image.rgb, args.tile, args.tile_overlap, multiple, tile_done)
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError too
        if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in str(err):
            raise
        where = f'{args.tile}x{args.tile} tiles' if args.tile else 'the whole image at once'
        raise InferenceError(f'Out of memory deblurring {image.path} ({height}x{width}) with {where} on '
                             f'{restorer.device}; use a smaller --tile (e.g. 512 or 256)') from None


def main(argv=None):
    # InferenceError, or DependencyError for a missing extra: one line, status 2
    return status_or_user_error(deblur_files, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
