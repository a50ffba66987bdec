"""Preparing paired deblurring datasets (GoPro, HIDE, RealBlur, RSBlur) for BasicSR: LMDBs
or flat folders with ``meta_info.txt``. The command-line front ends are
``scripts/prepare_{gopro,hide,realblur,rsblur}.py``; the demo uses the same functions."""
from basicsr_sgenet.data.preparation.outputs import FORMATS, UnitPlan
from basicsr_sgenet.data.preparation.pairs import HIDE_SUBSETS, ImagePair
from basicsr_sgenet.data.preparation.recipes import (DEFAULT_GOPRO_OUTPUT, DEFAULT_GRID, DEFAULT_HIDE_OUTPUT,
                                                     DEFAULT_REALBLUR_OUTPUT, DEFAULT_RSBLUR_OUTPUT, GOPRO_SPLITS,
                                                     REALBLUR_SPLITS, REALBLUR_VARIANTS, RSBLUR_SPLITS,
                                                     default_workers, prepare_gopro, prepare_hide, prepare_realblur,
                                                     prepare_rsblur, run_plans)
from basicsr_sgenet.data.preparation.subimages import SubimageGrid

__all__ = ['DEFAULT_GOPRO_OUTPUT', 'DEFAULT_GRID', 'DEFAULT_HIDE_OUTPUT', 'DEFAULT_REALBLUR_OUTPUT',
           'DEFAULT_RSBLUR_OUTPUT', 'FORMATS', 'GOPRO_SPLITS', 'HIDE_SUBSETS', 'REALBLUR_SPLITS', 'REALBLUR_VARIANTS',
           'RSBLUR_SPLITS', 'ImagePair', 'SubimageGrid', 'UnitPlan', 'default_workers', 'prepare_gopro',
           'prepare_hide', 'prepare_realblur', 'prepare_rsblur', 'run_plans']
