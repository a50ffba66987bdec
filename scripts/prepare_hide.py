"""HIDE test set to BasicSR LMDBs (or flat folders).

    python scripts/prepare_hide.py --input /data/HIDE_dataset --subsets

writes (default --output datasets/HIDE):

    datasets/HIDE/test/{blur,sharp}.lmdb              all 2025 test images
    datasets/HIDE/test-close-ups/{blur,sharp}.lmdb    with --subsets: each subset on its own
    datasets/HIDE/test-long-shot/{blur,sharp}.lmdb

Blurred images come from <input>/test/{test-close-ups,test-long-shot}/, sharp ones from
<input>/GT/ (same file names); keys are the file names without extension. The same
checks and re-run rules as prepare_gopro.py apply.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.data.preparation.arguments import add_output_arguments, run_preparation  # noqa: E402
from basicsr_sgenet.data.preparation import DEFAULT_HIDE_OUTPUT, HIDE_SUBSETS, prepare_hide  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='the HIDE folder (holding test/ and GT/)')
    parser.add_argument('--output', default=DEFAULT_HIDE_OUTPUT, help='where test/ (and each subset) go')
    parser.add_argument('--subsets', action='store_true',
                        help='also write test-close-ups and test-long-shot separately, for per-subset scores')
    parser.add_argument('--only', nargs='+', default=list(HIDE_SUBSETS), choices=HIDE_SUBSETS, metavar='SUBSET',
                        help=f'subsets to include ({", ".join(HIDE_SUBSETS)})')
    add_output_arguments(parser)
    return parser.parse_args(argv)


def prepare(args):
    prepare_hide(args.input, args.output, args.only, args.subsets, args.format, args.compress_level, args.workers,
                 args.overwrite)


def main(argv=None):
    run_preparation(prepare, parse_args(argv), unit='dataset')


if __name__ == '__main__':
    main()
