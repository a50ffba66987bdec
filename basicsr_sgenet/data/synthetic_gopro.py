"""A GoPro-style dataset rendered from photos bundled with scikit-image: no download.

``write_synthetic_tree`` writes GOPRO_Large's layout
(``<root>/{train,test}/<photo>/{blur,blur_gamma,sharp}/<frame>.png``) with camera-shake
blur from ``synthetic_blur``; ``build_synthetic_gopro`` also turns it into the LMDBs
``scripts/prepare_gopro.py`` writes, so the demo and the studies train through exactly
the pipeline a GoPro user does. Training and test photos are disjoint: scores are on
content the network has not seen.

Both are re-runnable: the tree records the settings it was made from, and an identical
request reuses it (a study stopped and restarted does not re-render its data).
"""
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Tuple

import cv2
import numpy as np

from basicsr_sgenet.data.synthetic_blur import ShakeSettings, synthesize_pair
from basicsr_sgenet.integration.atomic_files import atomic_write
from basicsr_sgenet.integration.errors import PreparationError

TREE_MARKER = '.made_by_sgenet_synthetic_gopro'
LEGACY_MARKER = '.made_by_sgenet_demo'  # the demo's trees before this module

# Photos that load without a download, by name (scikit-image's function, or an alias).
# Grey ones are repeated to three channels.
COLOUR_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'motorcycle', 'motorcycle_right', 'hubble_deep_field',
                 'immunohistochemistry', 'retina', 'colorwheel')
GREY_PHOTOS = ('camera', 'moon', 'brick', 'grass', 'gravel', 'coins', 'clock', 'text', 'page', 'cell')
PHOTOS = COLOUR_PHOTOS + GREY_PHOTOS


def load_photo(name):
    """A photo bundled with scikit-image as RGB uint8 (grey photos repeated to RGB)."""
    from skimage import data
    if name not in PHOTOS:
        raise PreparationError(f'unknown photo {name!r}; bundled photos: {", ".join(PHOTOS)}.')
    if name in ('motorcycle', 'motorcycle_right'):
        image = data.stereo_motorcycle()[0 if name == 'motorcycle' else 1]
    else:
        image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


@dataclass(frozen=True)
class SyntheticGoProSettings:
    """What to render. Frame sizes are (height, width); each frame is a random window of
    its photo, blurred along its own random shake path."""
    train_photos: Tuple[str, ...] = ('astronaut', 'coffee', 'rocket', 'motorcycle')
    test_photos: Tuple[str, ...] = ('chelsea',)
    train_frames_per_photo: int = 6
    test_frames_per_photo: int = 3
    train_frame_size: Tuple[int, int] = (192, 256)
    test_frame_size: Tuple[int, int] = (240, 320)
    shake: ShakeSettings = field(default_factory=ShakeSettings)

    def __post_init__(self):
        for key in ('train_photos', 'test_photos'):
            photos = getattr(self, key)
            if not photos:
                raise PreparationError(f'{key} must name at least one photo.')
            unknown = [name for name in photos if name not in PHOTOS]
            if unknown:
                raise PreparationError(f'{key}: unknown photo(s) {", ".join(map(repr, unknown))}; bundled photos: '
                                       f'{", ".join(PHOTOS)}.')
        shared = set(self.train_photos) & set(self.test_photos)
        if shared:
            raise PreparationError(f'test_photos must be held out from train_photos; both name '
                                   f'{", ".join(sorted(shared))}.')
        for key in ('train_frames_per_photo', 'test_frames_per_photo'):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PreparationError(f'{key} must be a positive integer, got {value!r}.')
        for key in ('train_frame_size', 'test_frame_size'):
            value = getattr(self, key)
            if (len(value) != 2 or not all(isinstance(side, int) and not isinstance(side, bool) and side >= 8
                                           for side in value)):
                raise PreparationError(f'{key} must be [height, width] in pixels (at least 8 each), got {value!r}.')

    @classmethod
    def from_dict(cls, values, where='synthetic data'):
        """Settings from a mapping (an option or study file); unknown keys are an error."""
        values = dict(values or {})
        known = {name for name in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise PreparationError(f'{where}: unknown key(s) {", ".join(unknown)} (known: {", ".join(sorted(known))}).')
        shake = values.pop('shake', None) or {}
        if not isinstance(shake, dict):
            raise PreparationError(f'{where}: shake must be a mapping, got {shake!r}.')
        unknown_shake = sorted(set(shake) - set(ShakeSettings.__dataclass_fields__))
        if unknown_shake:
            raise PreparationError(f'{where}: unknown shake key(s) {", ".join(unknown_shake)} (known: '
                                   f'{", ".join(ShakeSettings.__dataclass_fields__)}).')
        for key in ('train_photos', 'test_photos', 'train_frame_size', 'test_frame_size'):
            if key in values:
                if not isinstance(values[key], (list, tuple)):
                    raise PreparationError(f'{where}: {key} must be a list, got {values[key]!r}.')
                values[key] = tuple(values[key])
        try:
            return cls(**values, shake=ShakeSettings(**shake))
        except PreparationError as err:
            raise PreparationError(f'{where}: {err}') from None

    def fingerprint(self, seed):
        """What the tree depends on, as JSON text (stored in the tree's marker file)."""
        return json.dumps({'settings': asdict(self), 'seed': seed}, sort_keys=True)


def _made_from(root):
    """The fingerprint a synthetic tree at ``root`` was made from: '' for a tree an older
    demo made (to be replaced), None if it is not a synthetic tree at all."""
    marker = os.path.join(root, TREE_MARKER)
    if not os.path.isfile(marker):
        return '' if os.path.isfile(os.path.join(root, LEGACY_MARKER)) else None
    with open(marker) as f:
        return f.read()


def _write_png(path, image):
    """Write ``image`` as PNG, or PreparationError naming the file (cv2.imwrite would
    return False and leave a truncated file on a full disk)."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(cv2.imencode('.png', image)[1].tobytes())
    except OSError as err:
        raise PreparationError(f'Cannot write {path} ({err.strerror or err}); the partial render is redone by the '
                               'next run') from None


def _write_text(path, text):
    try:
        with atomic_write(path, 'w') as f:
            f.write(text)
    except OSError as err:
        raise PreparationError(f'Cannot write {path} ({err.strerror or err})') from None


def write_synthetic_tree(root, settings, seed=0):
    """Render the GoPro-layout tree at ``root``; returns True if written, False if the
    same settings and seed were already there. An earlier synthetic tree is replaced; a
    folder that is not one is refused."""
    fingerprint = settings.fingerprint(seed)
    made_from = _made_from(root)
    if made_from == fingerprint:
        return False
    if os.path.exists(root):
        if made_from is None:
            raise PreparationError(f'{root} exists and is not a synthetic GoPro tree; choose another folder.')
        shutil.rmtree(root)
    partial = f'{root}.partial'
    if os.path.exists(partial):
        shutil.rmtree(partial)
    try:
        rng = np.random.default_rng(seed)
        for split, photos, frames, (height, width) in (
                ('train', settings.train_photos, settings.train_frames_per_photo, settings.train_frame_size),
                ('test', settings.test_photos, settings.test_frames_per_photo, settings.test_frame_size)):
            for photo_name in photos:
                photo = load_photo(photo_name)
                for frame in range(1, frames + 1):
                    try:
                        images = synthesize_pair(photo, rng, height, width, settings.shake)
                    except ValueError as err:
                        raise PreparationError(f'{split} photo {photo_name}: {err}') from None
                    for folder, image in zip(('sharp', 'blur', 'blur_gamma'), images):
                        path = os.path.join(partial, split, photo_name, folder, f'{frame:06d}.png')
                        _write_png(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        _write_text(os.path.join(partial, TREE_MARKER), fingerprint)
    except BaseException:  # a full disk, Ctrl-C: the partial render is this run's own, and useless
        shutil.rmtree(partial, ignore_errors=True)
        raise
    os.replace(partial, root)  # complete or absent: an interrupted render is redone
    return True


@dataclass(frozen=True)
class SyntheticGoProPaths:
    tree: str      # GOPRO_Large layout
    datasets: str  # <datasets>/{train,test}/{blur,sharp}.lmdb


def build_synthetic_gopro(tree_root, dataset_root, settings, grid, seed=0, workers=None, log=print):
    """The tree (``write_synthetic_tree``) and its LMDBs, cut by ``grid`` as
    ``prepare_gopro`` cuts GoPro; both reused when already made from the same request."""
    from basicsr_sgenet.data.preparation import prepare_gopro

    legacy = _made_from(tree_root) == ''  # an older demo's tree: its LMDBs are the demo's too
    if legacy:  # made before preparation.json marked datasets: recognised by the tree's marker, replaced
        from basicsr_sgenet.data.preparation.outputs import made_by_this_tool
        for split in ('train', 'test'):
            old = os.path.join(dataset_root, split)
            if os.path.isdir(old) and not made_by_this_tool(old):
                shutil.rmtree(old)
    rewritten = write_synthetic_tree(tree_root, settings, seed)
    datasets_marker = os.path.join(dataset_root, TREE_MARKER)
    request = json.dumps({'tree': settings.fingerprint(seed), 'grid': asdict(grid)}, sort_keys=True)
    if rewritten or _made_from(dataset_root) != request:
        if (os.path.exists(dataset_root) and _made_from(dataset_root) is None and os.listdir(dataset_root)
                and not legacy):
            raise PreparationError(f'{dataset_root} exists and was not made from a synthetic GoPro tree; choose '
                                   'another folder.')
        prepare_gopro(tree_root, dataset_root, grid=grid, workers=workers, overwrite=True, progress=False, log=log)
        _write_text(datasets_marker, request)
    return SyntheticGoProPaths(tree_root, dataset_root)
