"""GoPro (GOPRO_Large) to BasicSR LMDBs.

    python scripts/prepare_gopro.py --input /data/GOPRO_Large

writes (default --output datasets/GoPro):

    datasets/GoPro/train/{blur,sharp}.lmdb   2103 frames cut into 512x512 sub-images, step 256
    datasets/GoPro/test/{blur,sharp}.lmdb    1111 full frames

Keys are ``<sequence>_<frame>`` (``_s001``... for sub-images), the same in blur and sharp.
Every image is decoded and checked before anything is written. Re-running skips splits
that are already complete; an incomplete or different existing split is an error unless
--overwrite is given, which rebuilds it and replaces it once the new one is complete.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.data.preparation import (DEFAULT_GOPRO_OUTPUT, DEFAULT_GRID, FORMATS, GOPRO_SPLITS,  # noqa: E402
                                             SubimageGrid, default_workers, prepare_gopro)
from basicsr_sgenet.integration.errors import Interrupted, exit_on_user_error  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='the GOPRO_Large folder (holding train/ and test/)')
    parser.add_argument('--output', default=DEFAULT_GOPRO_OUTPUT, help='where <split>/{blur,sharp}.lmdb go')
    parser.add_argument('--splits', nargs='+', default=list(GOPRO_SPLITS), choices=GOPRO_SPLITS)
    parser.add_argument('--blur-folder', default='blur', choices=('blur', 'blur_gamma'),
                        help='"blur" is what SGENet, MPRNet, MIMO-UNet and others train and test on; '
                             '"blur_gamma" (gamma-2.2 averaging) is what DeepDeblur used')
    parser.add_argument('--crop-size', type=int, default=DEFAULT_GRID.crop_size,
                        help='training sub-image size; 0 stores full training frames instead')
    parser.add_argument('--step', type=int, default=DEFAULT_GRID.step, help='stride between training sub-images')
    parser.add_argument('--thresh-size', type=int, default=DEFAULT_GRID.thresh_size,
                        help='a leftover border up to this many pixels is dropped instead of getting its own '
                             'sub-image flush with the frame edge')
    parser.add_argument('--format', default='lmdb', choices=FORMATS,
                        help="'folder': flat <split>/{blur,sharp}/<key>.png for BasicSR's disk backend")
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression 0-9 (1: fast to decode)')
    parser.add_argument('--workers', type=int, default=default_workers(), help='processes decoding and encoding')
    parser.add_argument('--overwrite', action='store_true',
                        help='rebuild the requested splits even if they exist, replacing them when done')
    return parser.parse_args(argv)


def prepare(args):
    grid = None if args.crop_size == 0 else SubimageGrid(args.crop_size, args.step, args.thresh_size)
    prepare_gopro(args.input, args.output, args.splits, args.blur_folder, grid, args.format, args.compress_level,
                  args.workers, args.overwrite)


def interruptible(function, *args):
    """``function(*args)``; Ctrl-C becomes one line saying what is left (exit status 130)."""
    try:
        return function(*args)
    except KeyboardInterrupt:
        raise Interrupted('the split being written was discarded; finished splits are kept (no half-written '
                          'dataset is left under its final name)') from None


def main(argv=None):
    args = parse_args(argv)
    exit_on_user_error(interruptible, prepare, args)


if __name__ == '__main__':
    main()
