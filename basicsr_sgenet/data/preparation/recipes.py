"""GoPro, HIDE, RealBlur and RSBlur preparation end to end: scan, check what exists, decode-check every
image, then write. Nothing is written until every input has been checked."""
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys

from tqdm import tqdm

from basicsr_sgenet.data.preparation.images import check_pairs
from basicsr_sgenet.data.preparation.outputs import (UnitPlan, build_unit, leftovers, remove_leftovers,
                                                     unit_state)
from basicsr_sgenet.data.preparation.pairs import (HIDE_SUBSETS, REALBLUR_LAYOUT, RSBLUR_LAYOUT, check_keys,
                                                   raise_if_problems, realblur_key, rsblur_key, scan_gopro_split,
                                                   scan_hide_subset, scan_list_file, unused_hide_ground_truth)
from basicsr_sgenet.data.preparation.subimages import SubimageGrid
from basicsr_sgenet.integration.errors import PreparationError
from basicsr_sgenet.integration.output_folders import output_folder_problem

GOPRO_SPLITS = ('train', 'test')
DEFAULT_GOPRO_OUTPUT = os.path.join('datasets', 'GoPro')
DEFAULT_HIDE_OUTPUT = os.path.join('datasets', 'HIDE')
# RealBlur: the authors' folder per variant and their list files (RealBlur.tar.gz holds both).
REALBLUR_VARIANTS = {'J': 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref',
                     'R': 'RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref'}
REALBLUR_SPLITS = ('train', 'test')
REALBLUR_LIST = 'RealBlur_{variant}_{split}_list.txt'
DEFAULT_REALBLUR_OUTPUT = 'datasets'  # units: datasets/RealBlur_J/test/, ...
# RSBlur: real blurred images and their sharp ones, split by rimchang/RSBlur's datalist/RSBlur/.
RSBLUR_SPLITS = ('train', 'val', 'test')
RSBLUR_LIST = 'RSBlur_real_{split}.txt'
DEFAULT_RSBLUR_OUTPUT = os.path.join('datasets', 'RSBlur')
# 512/256 keeps every 256x256 training crop position reachable (see subimages.py) and
# cuts a 720x1280 frame into 2 x 4 sub-images.
DEFAULT_GRID = SubimageGrid(crop_size=512, step=256, thresh_size=0)


def default_workers():
    return max(1, min(8, os.cpu_count() or 1))


@contextlib.contextmanager
def _output_lock(output_root):
    """Refuse to run two preparations into the same output folder at once."""
    try:
        os.makedirs(output_root, exist_ok=True)
        lock_file = open(os.path.join(output_root, '.prepare.lock'), 'w')
    except OSError as err:
        raise PreparationError(f'Cannot write to {output_root}: {err.strerror or err}.') from None
    with lock_file:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; the staging folders still protect the data
            yield
            return
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise PreparationError(f'Another preparation is writing to {output_root}; wait for it to finish.') from None
        yield


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid):
    """Worker-process initializer: on Linux, have the kernel kill this worker when the
    preparing process dies, even by kill -9, instead of letting it finish the image it is
    decoding as an orphan. Elsewhere a worker ends once its current image is done (its
    result pipe is closed)."""
    if not sys.platform.startswith('linux'):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    try:  # the parent may have died before prctl took effect
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        os._exit(1)
    except PermissionError:
        pass


@contextlib.contextmanager
def worker_map(workers):
    """An ordered ``map`` over ``workers`` processes (the built-in map for one worker);
    the workers die with this process."""
    if workers <= 1:
        yield map
        return
    with multiprocessing.Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        yield lambda fn, items: pool.imap(fn, items, chunksize=1)


def _progress(total, description, progress):
    # progress None: bars only when writing to a terminal (tqdm's own rule).
    return tqdm(total=total, desc=description, unit='pair', disable=None if progress is None else not progress)


def run_plans(plans, workers=None, overwrite=False, progress=None, log=print):
    """Build every plan that is not already complete (every plan, with ``overwrite``).

    Returns [(plan, status, stored)]: status 'built' or 'skipped', ``stored`` the number of
    stored image pairs (None when skipped)."""
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise PreparationError(f'workers must be at least 1, got {workers}.')
    results, to_build = [], []
    for plan in plans:
        if overwrite:
            # --overwrite rebuilds everything asked for; the old data goes only once the new is in place.
            if os.path.lexists(plan.path):
                log(f'{plan.path} exists; it will be rebuilt and replaced (--overwrite).')
            to_build.append(plan)
        elif unit_state(plan) == 'complete':  # raises, naming the problem, on anything but absent/complete
            log(f'{plan.path} is already complete ({len(plan.pairs)} frames); skipped.')
            _remove_leftovers_unless_busy(plan, log)
            results.append((plan, 'skipped', None))
        else:
            to_build.append(plan)
    if not to_build:
        return results
    for output_root in dict.fromkeys(os.path.dirname(os.path.abspath(plan.path)) for plan in to_build):
        problem = output_folder_problem(output_root)
        if problem:
            raise PreparationError(f'Output folder {problem}; nothing was written.')

    unique_pairs = list({pair: None for plan in to_build for pair in plan.pairs})
    with worker_map(workers) as map_fn:
        with _progress(len(unique_pairs), 'Checking images', progress) as bar:
            shapes = check_pairs(unique_pairs, map_fn, bar)
        too_small = [f'{pair.blur_path} is {shapes[pair][1]}x{shapes[pair][0]}, smaller than the '
                     f'{plan.grid.crop_size}x{plan.grid.crop_size} sub-images'
                     for plan in to_build if plan.grid is not None for pair in plan.pairs
                     if plan.grid.too_small(shapes[pair])]
        raise_if_problems(too_small, 'Some images are too small to cut into sub-images (lower --crop-size, or '
                                     'pass --crop-size 0 to keep full frames)')
        for plan in to_build:
            with _output_lock(os.path.dirname(os.path.abspath(plan.path))):
                with _progress(len(plan.pairs), f'Writing {plan.path}', progress) as bar:
                    stored = build_unit(plan, shapes, map_fn, bar, log)
                remove_leftovers(plan, log)
            log(f'Wrote {plan.path}: {len(plan.pairs)} frames, {stored} image pairs per side.')
            results.append((plan, 'built', stored))
    return results


def _remove_leftovers_unless_busy(plan, log):
    """Remove what a killed run left beside a complete ``plan``, unless another preparation
    is writing there right now (its staging folder is not a leftover)."""
    if not leftovers(plan):
        return
    try:
        with _output_lock(os.path.dirname(os.path.abspath(plan.path))):
            remove_leftovers(plan, log)
    except PreparationError as err:
        log(f'Left {", ".join(leftovers(plan))} in place: {err}')


def prepare_gopro(input_root, output_root=DEFAULT_GOPRO_OUTPUT, splits=GOPRO_SPLITS, blur_folder='blur',
                  grid=DEFAULT_GRID, fmt='lmdb', compress_level=1, workers=None, overwrite=False, progress=None,
                  log=print):
    """GOPRO_Large (``<root>/train|test/<sequence>/{blur,blur_gamma,sharp}``) to
    ``<output_root>/<split>/{blur,sharp}.lmdb``: training frames cut by ``grid`` into
    sub-images (None: full frames), test frames whole. Keys: ``<sequence>_<frame>``,
    plus ``_s###`` for sub-images."""
    unknown = [split for split in splits if split not in GOPRO_SPLITS]
    if unknown or not splits:
        raise PreparationError(f'splits must be among {", ".join(GOPRO_SPLITS)}, got {", ".join(splits) or "none"}.')
    plans = []
    for split in splits:
        split_grid = grid if split == 'train' else None
        settings = {'dataset': 'GoPro', 'split': split, 'blur_folder': blur_folder, 'format': fmt,
                    'subimages': None if split_grid is None else vars(split_grid).copy()}
        plans.append(UnitPlan(os.path.join(output_root, split), scan_gopro_split(input_root, split, blur_folder),
                              settings, fmt, split_grid, compress_level, os.path.abspath(input_root)))
    return run_plans(plans, workers, overwrite, progress, log)


def prepare_hide(input_root, output_root=DEFAULT_HIDE_OUTPUT, subsets=HIDE_SUBSETS, separate_subsets=False,
                 fmt='lmdb', compress_level=1, workers=None, overwrite=False, progress=None, log=print):
    """HIDE's test set to ``<output_root>/test/`` (all ``subsets`` together) and, with
    ``separate_subsets``, also ``<output_root>/<subset>/`` for each. Keys: file stems."""
    unknown = [subset for subset in subsets if subset not in HIDE_SUBSETS]
    if unknown or not subsets:
        raise PreparationError(f'subsets must be among {", ".join(HIDE_SUBSETS)}, got {", ".join(subsets) or "none"}.')
    subset_pairs = {subset: scan_hide_subset(input_root, subset) for subset in subsets}
    combined = sorted((pair for pairs in subset_pairs.values() for pair in pairs), key=lambda pair: pair.key)
    check_keys(combined)
    unused = unused_hide_ground_truth(input_root, combined)
    if unused and tuple(subsets) == HIDE_SUBSETS:
        log(f'Note: {len(unused)} images in {os.path.join(input_root, "GT")} belong to no test subset '
            f'(e.g. {unused[0]}); they are left out.')

    def plan(name, pairs, subset_names):
        settings = {'dataset': 'HIDE', 'subsets': list(subset_names), 'format': fmt, 'subimages': None}
        return UnitPlan(os.path.join(output_root, name), pairs, settings, fmt, None, compress_level,
                        os.path.abspath(input_root))

    plans = [plan('test', combined, subsets)]
    if separate_subsets:
        plans += [plan(subset, pairs, [subset]) for subset, pairs in subset_pairs.items()]
    return run_plans(plans, workers, overwrite, progress, log)


def _check_choice(values, allowed, what):
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise PreparationError(f'{what} must be among {", ".join(allowed)}, got {", ".join(values) or "none"}.')


def prepare_from_lists(dataset, input_root, list_dir, units, key_of, layout, grid, fmt, compress_level, workers,
                       overwrite, progress, log):
    """Datasets whose splits are list files (RealBlur, RSBlur): ``units`` are
    (output path, list file name, settings); training units (settings['split'] 'train')
    are cut by ``grid`` (None: full frames). Every list is scanned before anything is built."""
    list_dir = input_root if list_dir is None else list_dir
    plans = []
    for path, list_name, settings in units:
        unit_grid = grid if settings['split'] == 'train' else None
        pairs = scan_list_file(input_root, os.path.join(list_dir, list_name), key_of, layout)
        settings = {'dataset': dataset, **settings, 'list': list_name, 'format': fmt,
                    'subimages': None if unit_grid is None else vars(unit_grid).copy()}
        plans.append(UnitPlan(path, pairs, settings, fmt, unit_grid, compress_level, os.path.abspath(input_root)))
    return run_plans(plans, workers, overwrite, progress, log)


def prepare_realblur(input_root, output_root=DEFAULT_REALBLUR_OUTPUT, variants=tuple(REALBLUR_VARIANTS),
                     splits=REALBLUR_SPLITS, list_dir=None, grid=None, fmt='lmdb', compress_level=1, workers=None,
                     overwrite=False, progress=None, log=print):
    """RealBlur-J/-R to ``<output_root>/RealBlur_<J|R>/<split>/``, the pairs and splits
    of the authors' ``RealBlur_<J|R>_<split>_list.txt`` (in ``list_dir``, default the
    input root). Keys: ``<scene>_<index>``, the names RealBlur's evaluation script expects."""
    _check_choice(variants, tuple(REALBLUR_VARIANTS), 'variants')
    _check_choice(splits, REALBLUR_SPLITS, 'splits')
    units = [(os.path.join(output_root, f'RealBlur_{variant}', split),
              REALBLUR_LIST.format(variant=variant, split=split), {'variant': variant, 'split': split})
             for variant in variants for split in splits]
    return prepare_from_lists('RealBlur', input_root, list_dir, units, realblur_key, REALBLUR_LAYOUT, grid, fmt,
                              compress_level, workers, overwrite, progress, log)


def prepare_rsblur(input_root, output_root=DEFAULT_RSBLUR_OUTPUT, splits=RSBLUR_SPLITS, list_dir=None,
                   grid=DEFAULT_GRID, fmt='lmdb', compress_level=1, workers=None, overwrite=False, progress=None,
                   log=print):
    """RSBlur's real blurred pairs to ``<output_root>/<split>/``, split by the authors'
    ``RSBlur_real_<split>.txt`` (in ``list_dir``, default the input root). Keys:
    ``<day>_<scene>``; training frames cut by ``grid`` (None: full frames)."""
    _check_choice(splits, RSBLUR_SPLITS, 'splits')
    units = [(os.path.join(output_root, split), RSBLUR_LIST.format(split=split), {'split': split}) for split in splits]
    return prepare_from_lists('RSBlur', input_root, list_dir, units, rsblur_key, RSBLUR_LAYOUT, grid, fmt,
                              compress_level, workers, overwrite, progress, log)
