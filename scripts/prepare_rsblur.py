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

from basicsr_sgenet.data.preparation import (DEFAULT_GRID, DEFAULT_RSBLUR_OUTPUT, FORMATS,  # noqa: E402
                                             RSBLUR_SPLITS, SubimageGrid, default_workers, prepare_rsblur)
from basicsr_sgenet.integration.errors import exit_on_user_error  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='the folder holding RSBlur/ (the unpacked RSBlur.zip)')
    parser.add_argument('--lists', help='folder holding RSBlur_real_{train,val,test}.txt (default: --input)')
    parser.add_argument('--output', default=DEFAULT_RSBLUR_OUTPUT, help='where <split>/{blur,sharp}.lmdb go')
    parser.add_argument('--splits', nargs='+', default=list(RSBLUR_SPLITS), choices=RSBLUR_SPLITS)
    parser.add_argument('--crop-size', type=int, default=DEFAULT_GRID.crop_size,
                        help='training sub-image size; 0 stores full training frames instead')
    parser.add_argument('--step', type=int, default=DEFAULT_GRID.step, help='stride between training sub-images')
    parser.add_argument('--thresh-size', type=int, default=DEFAULT_GRID.thresh_size,
                        help='a leftover border up to this many pixels gets no sub-image of its own')
    parser.add_argument('--format', default='lmdb', choices=FORMATS,
                        help="'folder': <split>/{blur,sharp}/<key>.png plus meta_info.txt, for BasicSR's disk backend")
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression 0-9 (1: fast to decode)')
    parser.add_argument('--workers', type=int, default=default_workers(), help='processes decoding and encoding')
    parser.add_argument('--overwrite', action='store_true',
                        help='rebuild the requested splits even if they exist, replacing them when done')
    return parser.parse_args(argv)


def prepare(args):
    grid = None if args.crop_size == 0 else SubimageGrid(args.crop_size, args.step, args.thresh_size)
    prepare_rsblur(args.input, args.output, args.splits, args.lists, grid, args.format, args.compress_level,
                   args.workers, args.overwrite)


def main(argv=None):
    args = parse_args(argv)
    try:
        exit_on_user_error(prepare, args)
    except KeyboardInterrupt:
        sys.exit('Interrupted: the split being written was discarded; finished splits are kept.')


if __name__ == '__main__':
    main()
