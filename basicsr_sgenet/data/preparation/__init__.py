"""Preparing paired deblurring datasets (GoPro, HIDE) for BasicSR: LMDBs or flat folders
with ``meta_info.txt``. The command-line front ends are ``scripts/prepare_gopro.py`` and
``scripts/prepare_hide.py``; the demo uses the same functions."""
from basicsr_sgenet.data.preparation.outputs import FORMATS, UnitPlan
from basicsr_sgenet.data.preparation.pairs import HIDE_SUBSETS, ImagePair
from basicsr_sgenet.data.preparation.recipes import (DEFAULT_GOPRO_OUTPUT, DEFAULT_GRID, DEFAULT_HIDE_OUTPUT,
                                                     GOPRO_SPLITS, default_workers, prepare_gopro, prepare_hide,
                                                     run_plans)
from basicsr_sgenet.data.preparation.subimages import SubimageGrid

__all__ = ['DEFAULT_GOPRO_OUTPUT', 'DEFAULT_GRID', 'DEFAULT_HIDE_OUTPUT', 'FORMATS', 'GOPRO_SPLITS', 'HIDE_SUBSETS',
           'ImagePair', 'SubimageGrid', 'UnitPlan', 'default_workers', 'prepare_gopro',
           'prepare_hide', 'run_plans']
