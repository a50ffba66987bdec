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

from basicsr_sgenet.data.preparation.arguments import add_output_arguments, add_subimage_arguments, run_preparation, subimage_grid  # noqa: E402
from basicsr_sgenet.data.preparation import (DEFAULT_REALBLUR_OUTPUT, REALBLUR_SPLITS, REALBLUR_VARIANTS,  # noqa: E402
                                             prepare_realblur)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--input', required=True, help='the RealBlur folder (holding RealBlur-J_..., RealBlur-R_...)')
    parser.add_argument('--lists', help='folder holding RealBlur_{J,R}_{train,test}_list.txt (default: --input)')
    parser.add_argument('--output', default=DEFAULT_REALBLUR_OUTPUT, help='where RealBlur_<J|R>/<split>/ go')
    parser.add_argument('--variants', nargs='+', default=list(REALBLUR_VARIANTS), choices=list(REALBLUR_VARIANTS))
    parser.add_argument('--splits', nargs='+', default=list(REALBLUR_SPLITS), choices=REALBLUR_SPLITS)
    add_subimage_arguments(parser, crop_size=0)
    add_output_arguments(parser)
    return parser.parse_args(argv)


def prepare(args):
    grid = subimage_grid(args)
    prepare_realblur(args.input, args.output, args.variants, args.splits, args.lists, grid, args.format,
                     args.compress_level, args.workers, args.overwrite)


def main(argv=None):
    run_preparation(prepare, parse_args(argv))


if __name__ == '__main__':
    main()
