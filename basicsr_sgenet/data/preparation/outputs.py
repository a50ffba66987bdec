"""Prepared datasets on disk: checking what is already there, and writing new ones safely.

One *unit* is one prepared split, e.g. ``datasets/GoPro/train/``::

    blur.lmdb/  sharp.lmdb/         (format 'lmdb': BasicSR LMDBs, each with meta_info.txt)
    blur/  sharp/  meta_info.txt    (format 'folder': PNGs for BasicSR's disk backend)
    preparation.json                what it was made from, compared on re-runs

A unit is written into ``.incomplete-<name>/`` beside its final place and renamed into
place only once complete and verified, so the final path holds either nothing or a
complete dataset: an interrupted run never leaves a half-written one there, and an
existing dataset is only replaced when the user asks for it (``overwrite``). What a
killed run leaves beside it (``.incomplete-<name>/``, or ``.replaced-<name>-<time>/``
when it was deleting the dataset it had replaced) is removed by the next run.
"""
import faulthandler
import json
import multiprocessing
import os
import re
import shutil
import time
from dataclasses import dataclass, field

import lmdb
import numpy as np
from basicsr.utils.lmdb_util import LmdbMaker

from basicsr_sgenet.data.lmdb_integrity import lmdb_problem
from basicsr_sgenet.data.preparation.images import encode_png, read_image
from basicsr_sgenet.integration.errors import PreparationError
from basicsr_sgenet.data.preparation.subimages import subimage_key

SETTINGS_FILE = 'preparation.json'
META_INFO_FILE = 'meta_info.txt'
SIDES = ('blur', 'sharp')
FORMATS = ('lmdb', 'folder')
_SUBIMAGE_SUFFIX = re.compile(r'_s\d+$')


@dataclass
class UnitPlan:
    """What one unit should contain. ``settings`` are the choices that change its content
    (compared with ``preparation.json`` on re-runs); ``grid`` None means full frames."""
    path: str
    pairs: list
    settings: dict
    fmt: str = 'lmdb'
    grid: object = None
    compress_level: int = 1
    source: str = ''
    frame_keys: list = field(init=False)

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise PreparationError(f'format must be one of {", ".join(FORMATS)}, got {self.fmt!r}.')
        if not 0 <= self.compress_level <= 9:
            raise PreparationError(f'PNG compression level must be 0-9, got {self.compress_level}.')
        self.frame_keys = [pair.key for pair in self.pairs]

    def side_path(self, root, side):
        return os.path.join(root, f'{side}.lmdb' if self.fmt == 'lmdb' else side)


# ----------------------------------------------------------------------------- reading


def read_meta_info_keys(path):
    """Keys listed in a meta_info.txt, parsed as BasicSR does (name up to the first '.')."""
    if not os.path.isfile(path):
        raise PreparationError(f'{path} is missing')
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    bad = [line for line in lines if len(line.split(' ')) < 2 or '.' not in line.split(' ')[0]]
    if bad:
        raise PreparationError(f'{path} has malformed lines, e.g. "{bad[0]}"')
    return [line.split('.')[0] for line in lines]


def _lmdb_keys_here(path):
    env = lmdb.open(path, readonly=True, lock=False, readahead=False)
    try:
        with env.begin() as txn:
            return [key.decode('ascii', 'replace') for key in txn.cursor().iternext(keys=True, values=False)]
    finally:
        env.close()


def _send_lmdb_keys(path, connection):
    # A damaged file may kill this child with SIGBUS, as intended: no crash report from a
    # fault handler the parent enabled (pytest and `python -X faulthandler` do).
    faulthandler.disable()
    try:
        connection.send(('keys', _lmdb_keys_here(path)))
    except lmdb.Error as err:
        connection.send(('error', str(err)))


def read_lmdb_keys(path):
    """Keys stored in the LMDB at ``path`` (values are not read); PreparationError naming
    it when it is missing, truncated or damaged.

    LMDB maps data.mdb into memory, and reading a page past the end of a damaged file
    kills the process with SIGBUS, no message. So the header is checked against the file
    size first (``lmdb_problem``: catches every truncation), and the keys are then listed
    in a forked child, so that damage inside the file kills the child instead of us."""
    problem = lmdb_problem(path)
    if problem:
        raise PreparationError(problem)
    if 'fork' not in multiprocessing.get_all_start_methods():  # Windows: no cheap child; read here
        try:
            return _lmdb_keys_here(path)
        except lmdb.Error as err:
            raise PreparationError(f'{path} cannot be read as an LMDB ({err})') from None
    context = multiprocessing.get_context('fork')
    receiver, sender = context.Pipe(duplex=False)
    reader = context.Process(target=_send_lmdb_keys, args=(path, sender), daemon=True)
    reader.start()
    sender.close()
    try:
        outcome, payload = receiver.recv()
    except EOFError:
        outcome, payload = 'crashed', None
    finally:
        receiver.close()
        reader.join()
    if outcome == 'keys':
        return payload
    if outcome == 'error':
        raise PreparationError(f'{path} cannot be read as an LMDB ({payload})')
    raise PreparationError(f'{path} is damaged: reading its keys crashed the reader (exit status {reader.exitcode})')


def stored_keys(plan, root):
    """{side: keys} actually stored in the unit at ``root``, each side's data and meta_info
    checked against each other; raises PreparationError saying what is wrong."""
    keys = {}
    for side in SIDES:
        side_path = plan.side_path(root, side)
        if not os.path.isdir(side_path):
            raise PreparationError(f'{side_path} is missing')
        if plan.fmt == 'lmdb':
            data_keys = read_lmdb_keys(side_path)
            meta_keys = read_meta_info_keys(os.path.join(side_path, META_INFO_FILE))
            where = side_path
        else:
            data_keys = [os.path.splitext(name)[0] for name in os.listdir(side_path) if name.endswith('.png')]
            meta_keys = read_meta_info_keys(os.path.join(root, META_INFO_FILE))
            where = f'{side_path} and {os.path.join(root, META_INFO_FILE)}'
        if sorted(data_keys) != sorted(meta_keys):
            raise PreparationError(f'{where}: {len(data_keys)} images stored but {len(meta_keys)} listed in '
                                   f'{META_INFO_FILE}, or different keys')
        keys[side] = sorted(data_keys)
    if keys['blur'] != keys['sharp']:
        raise PreparationError(f'the blur and sharp keys in {root} differ')
    return keys


def _frame_of(key, plan):
    return _SUBIMAGE_SUFFIX.sub('', key) if plan.grid is not None else key


def check_unit_contents(plan, root):
    """Raise PreparationError unless the unit at ``root`` holds exactly the plan's frames."""
    keys = stored_keys(plan, root)['blur']
    frames_stored = sorted({_frame_of(key, plan) for key in keys})
    if frames_stored != sorted(plan.frame_keys):
        missing = sorted(set(plan.frame_keys) - set(frames_stored))
        extra = sorted(set(frames_stored) - set(plan.frame_keys))
        parts = []
        if missing:
            parts.append(f'{len(missing)} source frames missing (e.g. {missing[0]})')
        if extra:
            parts.append(f'{len(extra)} frames not in the source (e.g. {extra[0]})')
        detail = '; '.join(parts)
        raise PreparationError(f'{root} does not match the source images: {detail}')
    return len(keys)


def made_by_this_tool(path):
    """Whether the folder ``path`` is a unit this tool moved into place: it holds the
    ``preparation.json`` written last into every unit. Only such folders are ever
    replaced (``--overwrite``)."""
    try:
        with open(os.path.join(path, SETTINGS_FILE)) as f:
            record = json.load(f)
        return os.path.isdir(path) and isinstance(record, dict) and isinstance(record.get('settings'), dict)
    except (OSError, ValueError):
        return False


def not_made_by_this_tool(path):
    """The error for a ``path`` that is in a unit's place but was not made by this tool."""
    what = 'is not a folder' if not os.path.isdir(path) else \
        f'is not a dataset made by this tool ({os.path.join(path, SETTINGS_FILE)} is missing or unreadable)'
    return PreparationError(f'{path} exists and {what}; it is never replaced, even with --overwrite. Nothing was '
                            'changed: move it away or choose another --output.')


def unit_state(plan):
    """'absent' or 'complete'; raises PreparationError when something else is there."""
    if not os.path.lexists(plan.path):
        return 'absent'
    advice = (f'Nothing was changed. Re-run with --overwrite to rebuild it (this replaces {plan.path}), or move it '
              'away, or choose another --output.')
    if not made_by_this_tool(plan.path):
        raise not_made_by_this_tool(plan.path)
    settings_path = os.path.join(plan.path, SETTINGS_FILE)
    with open(settings_path) as f:
        record = json.load(f)
    recorded, recorded_count = record['settings'], record.get('image_pairs')
    if recorded != plan.settings:
        changed = ', '.join(f'{name}: {recorded.get(name)!r} there, {plan.settings.get(name)!r} now'
                            for name in sorted(set(recorded) | set(plan.settings))
                            if recorded.get(name) != plan.settings.get(name))
        raise PreparationError(f'{plan.path} was prepared with other settings ({changed}). {advice}')
    try:
        count = check_unit_contents(plan, plan.path)
        if count != recorded_count:
            raise PreparationError(f'{count} image pairs stored, {recorded_count} written')
    except PreparationError as err:
        raise PreparationError(f'{plan.path} is incomplete, damaged or out of date: {err}. {advice}') from None
    return 'complete'


# ----------------------------------------------------------------------------- writing


def encode_pair_entries(task):
    """[(key, blur_png, sharp_png, shape)] for one pair: the full frame, or its sub-images.

    Runs in worker processes: decoding and PNG encoding are the expensive part."""
    pair, grid, compress_level = task
    blur, sharp = read_image(pair.blur_path), read_image(pair.sharp_path)
    if grid is None:
        return [(pair.key, encode_png(blur, compress_level), encode_png(sharp, compress_level), blur.shape)]
    boxes = grid.boxes(*blur.shape[:2])
    entries = []
    for index, (top, left) in enumerate(boxes):
        window = (slice(top, top + grid.crop_size), slice(left, left + grid.crop_size))
        blur_crop, sharp_crop = np.ascontiguousarray(blur[window]), np.ascontiguousarray(sharp[window])
        entries.append((subimage_key(pair.key, index, len(boxes)), encode_png(blur_crop, compress_level),
                        encode_png(sharp_crop, compress_level), blur_crop.shape))
    return entries


class _LmdbPairWriter:
    """Both sides through BasicSR's LmdbMaker, which also writes each meta_info.txt."""

    def __init__(self, plan, root, raw_bytes_per_side):
        # LMDB files are sparse: a generous map size costs no disk, a small one fails mid-run.
        map_size = int(raw_bytes_per_side * 1.5) + 64 * 1024**2
        self.makers = {side: LmdbMaker(plan.side_path(root, side), map_size=map_size,
                                       compress_level=plan.compress_level) for side in SIDES}

    def put(self, key, blur_png, sharp_png, shape):
        self.makers['blur'].put(blur_png, key, shape)
        self.makers['sharp'].put(sharp_png, key, shape)

    def close(self):
        for maker in self.makers.values():
            maker.close()


class _FolderPairWriter:
    """``blur/<key>.png``, ``sharp/<key>.png`` and one meta_info.txt in BasicSR's format."""

    def __init__(self, plan, root, raw_bytes_per_side):
        self.paths = {side: plan.side_path(root, side) for side in SIDES}
        for path in self.paths.values():
            os.makedirs(path)
        self.compress_level = plan.compress_level
        self.meta_info = open(os.path.join(root, META_INFO_FILE), 'w')

    def put(self, key, blur_png, sharp_png, shape):
        for side, data in (('blur', blur_png), ('sharp', sharp_png)):
            with open(os.path.join(self.paths[side], f'{key}.png'), 'wb') as f:
                f.write(data)
        height, width, channels = shape
        self.meta_info.write(f'{key}.png ({height},{width},{channels}) {self.compress_level}\n')

    def close(self):
        self.meta_info.close()


def _raw_bytes(plan, shapes):
    total = 0
    for pair in plan.pairs:
        height, width, channels = shapes[pair]
        if plan.grid is None:
            total += height * width * channels
        else:
            total += len(plan.grid.boxes(height, width)) * plan.grid.crop_size**2 * channels
    return total


def _expected_count(plan, shapes):
    if plan.grid is None:
        return len(plan.pairs)
    return sum(len(plan.grid.boxes(*shapes[pair][:2])) for pair in plan.pairs)


def build_unit(plan, shapes, map_fn=map, progress=None, log=print):
    """Write ``plan`` (its pairs already checked; ``shapes``: {pair: shape}) into a temporary
    folder, verify it, and move it into place, replacing what is there. Returns the number
    of stored image pairs."""
    parent, name = os.path.split(os.path.abspath(plan.path))
    staging = os.path.join(parent, f'.incomplete-{name}')
    if os.path.lexists(staging):
        log(f'Removing {staging}, a partial build left by an interrupted run.')
        shutil.rmtree(staging)
    try:
        os.makedirs(staging)
        writer_type = _LmdbPairWriter if plan.fmt == 'lmdb' else _FolderPairWriter
        writer = writer_type(plan, staging, _raw_bytes(plan, shapes))
        tasks = [(pair, plan.grid, plan.compress_level) for pair in plan.pairs]
        for entries in map_fn(encode_pair_entries, tasks):
            for entry in entries:
                writer.put(*entry)
            if progress is not None:
                progress.update(1)
        writer.close()
        count = check_unit_contents(plan, staging)
        expected = _expected_count(plan, shapes)
        if count != expected:
            raise RuntimeError(f'{staging} holds {count} image pairs instead of {expected}; nothing was moved.')
        with open(os.path.join(staging, SETTINGS_FILE), 'w') as f:
            json.dump({'settings': plan.settings, 'image_pairs': count, 'frames': len(plan.frame_keys),
                       'source': plan.source, 'compress_level': plan.compress_level,
                       'made': time.strftime('%Y-%m-%d %H:%M:%S')}, f, indent=2)
    except BaseException as err:
        # Only the staging folder is removed: it holds nothing but this run's partial output.
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, (OSError, lmdb.Error)):  # disk full, permissions, a vanished folder
            raise PreparationError(f'Writing {plan.path} failed ({err}); the partial build was removed and '
                                   f'{plan.path} is as it was.') from None
        raise
    _move_into_place(staging, plan.path)
    return count


def leftovers(plan):
    """Hidden folders a killed run can leave beside ``plan.path``: its partial build
    (``.incomplete-<name>``) and, after --overwrite, the old dataset it was deleting
    (``.replaced-<name>-<time>``)."""
    parent, name = os.path.split(os.path.abspath(plan.path))
    pattern = re.compile(rf'^(\.incomplete-{re.escape(name)}|\.replaced-{re.escape(name)}-\d{{8}}-\d{{6}})$')
    if not os.path.isdir(parent):
        return []
    return [os.path.join(parent, entry) for entry in sorted(os.listdir(parent)) if pattern.match(entry)]


def remove_leftovers(plan, log=print):
    """Delete ``leftovers(plan)``, naming each (callers hold the output folder's lock, so
    no running preparation is using them)."""
    for path in leftovers(plan):
        log(f'Removing {path}, left by an interrupted run.')
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _move_into_place(staging, final):
    if not os.path.lexists(final):
        os.rename(staging, final)
        return
    # Overwrite: the old dataset is only deleted once the new one is in its place.
    parent, name = os.path.split(os.path.abspath(final))
    retired = os.path.join(parent, f'.replaced-{name}-{time.strftime("%Y%m%d-%H%M%S")}')
    os.rename(final, retired)
    os.rename(staging, final)
    if os.path.isdir(retired) and not os.path.islink(retired):
        shutil.rmtree(retired)
    else:
        os.remove(retired)
