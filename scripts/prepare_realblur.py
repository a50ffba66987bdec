"""RealBlur-J and RealBlur-R to BasicSR LMDBs, split by the authors' list files.

    python scripts/prepare_realblur.py --input /data/RealBlur

reads (the layout of the authors' RealBlur.tar.gz)

    <input>/RealBlur-J_ECC_IMCORR_centroid_itensity_ref/<scene>/{gt,blur}/*.png
    <input>/RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/<scene>/{gt,blur}/*.png
    <input>/RealBlur_{J,R}_{train,test}_list.txt   lines "<gt path> <blur path>" (--lists: elsewhere)

and writes (default --output datasets)

    datasets/RealBlur_J/{train,test}/{blur,sharp}.lmdb    3758 / 980 pairs
    datasets/RealBlur_R/{train,test}/{blur,sharp}.lmdb    3758 / 980 pairs

Keys are ``<scene>_<index>`` (scene230/gt/gt_7.png: scene230_7), the file names RealBlur's
own evaluation script expects of restored images. Full frames by default (they are about
680x770); --crop-size cuts the training frames into sub-images as prepare_gopro.py does.
The same checks and re-run rules as prepare_gopro.py apply: every listed image is decoded
before anything is written, and a split is written in full or not at all.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.data.preparation import (DEFAULT_GRID, DEFAULT_REALBLUR_OUTPUT, FORMATS,  # noqa: E402
                                             REALBLUR_SPLITS, REALBLUR_VARIANTS, SubimageGrid, default_workers,
                                             prepare_realblur)
from basicsr_sgenet.integration.errors import exit_on_user_error  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='the RealBlur folder (holding RealBlur-J_..., RealBlur-R_...)')
    parser.add_argument('--lists', help='folder holding RealBlur_{J,R}_{train,test}_list.txt (default: --input)')
    parser.add_argument('--output', default=DEFAULT_REALBLUR_OUTPUT, help='where RealBlur_<J|R>/<split>/ go')
    parser.add_argument('--variants', nargs='+', default=list(REALBLUR_VARIANTS), choices=list(REALBLUR_VARIANTS))
    parser.add_argument('--splits', nargs='+', default=list(REALBLUR_SPLITS), choices=REALBLUR_SPLITS)
    parser.add_argument('--crop-size', type=int, default=0,
                        help='training sub-image size; 0 stores full training frames')
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
    prepare_realblur(args.input, args.output, args.variants, args.splits, args.lists, grid, args.format,
                     args.compress_level, args.workers, args.overwrite)


def main(argv=None):
    args = parse_args(argv)
    try:
        exit_on_user_error(prepare, args)
    except KeyboardInterrupt:
        sys.exit('Interrupted: the split being written was discarded; finished splits are kept.')


if __name__ == '__main__':
    main()
