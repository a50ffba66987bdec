"""RSBlur (real blurred images) to BasicSR LMDBs, split by the authors' list files.

    python scripts/prepare_rsblur.py --input /data --lists /src/RSBlur/datalist/RSBlur

reads (the layout of the authors' RSBlur.zip, unpacked into <input>)

    <input>/RSBlur/<day>/<scene>/gt/gt_sharp.png and real_blur/real_blur.png
    <lists>/RSBlur_real_{train,val,test}.txt   lines "<gt path> <blur path>", relative to <input>

(the list files are in the RSBlur repository on GitHub, rimchang/RSBlur, datalist/RSBlur/)
and writes (default --output datasets/RSBlur)

    datasets/RSBlur/train/{blur,sharp}.lmdb   8878 frames cut into 512x512 sub-images, step 256
    datasets/RSBlur/val/{blur,sharp}.lmdb     1120 full frames
    datasets/RSBlur/test/{blur,sharp}.lmdb    3360 full frames

Keys are ``<day>_<scene>`` (RSBlur/0001/000022/...: 0001_000022). Only the real blurred
images are used (the synthetic avg65_img ones are not). The same checks and re-run rules
as prepare_gopro.py apply.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.data.preparation.arguments import add_output_arguments, add_subimage_arguments, run_preparation, subimage_grid  # noqa: E402
from basicsr_sgenet.data.preparation import DEFAULT_RSBLUR_OUTPUT, RSBLUR_SPLITS, prepare_rsblur  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='the folder holding RSBlur/ (the unpacked RSBlur.zip)')
    parser.add_argument('--lists', help='folder holding RSBlur_real_{train,val,test}.txt (default: --input)')
    parser.add_argument('--output', default=DEFAULT_RSBLUR_OUTPUT, help='where <split>/{blur,sharp}.lmdb go')
    parser.add_argument('--splits', nargs='+', default=list(RSBLUR_SPLITS), choices=RSBLUR_SPLITS)
    add_subimage_arguments(parser)
    add_output_arguments(parser)
    return parser.parse_args(argv)


def prepare(args):
    grid = subimage_grid(args)
    prepare_rsblur(args.input, args.output, args.splits, args.lists, grid, args.format, args.compress_level,
                   args.workers, args.overwrite)


def main(argv=None):
    run_preparation(prepare, parse_args(argv))


if __name__ == '__main__':
    main()
