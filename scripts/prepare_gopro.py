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

from basicsr_sgenet.data.preparation.arguments import add_output_arguments, add_subimage_arguments, run_preparation, subimage_grid  # noqa: E402
from basicsr_sgenet.data.preparation import (DEFAULT_GOPRO_OUTPUT, GOPRO_SPLITS,  # noqa: E402
                                             prepare_gopro)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='the GOPRO_Large folder (holding train/ and test/)')
    parser.add_argument('--output', default=DEFAULT_GOPRO_OUTPUT, help='where <split>/{blur,sharp}.lmdb go')
    parser.add_argument('--splits', nargs='+', default=list(GOPRO_SPLITS), choices=GOPRO_SPLITS)
    parser.add_argument('--blur-folder', default='blur', choices=('blur', 'blur_gamma'),
                        help='"blur" is what SGENet, MPRNet, MIMO-UNet and others train and test on; '
                             '"blur_gamma" (gamma-2.2 averaging) is what DeepDeblur used')
    add_subimage_arguments(parser)
    add_output_arguments(parser)
    return parser.parse_args(argv)


def prepare(args):
    grid = subimage_grid(args)
    prepare_gopro(args.input, args.output, args.splits, args.blur_folder, grid, args.format, args.compress_level,
                  args.workers, args.overwrite)


def main(argv=None):
    run_preparation(prepare, parse_args(argv))


if __name__ == '__main__':
    main()
