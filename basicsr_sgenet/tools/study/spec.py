"""A study file: one base option file, variants of it, seeds and a budget.

::

    name: ablation_mini
    base: ../train_SGENet_GoPro.yml      # relative to the study file; a variant may name its own
    seeds: [0, 1, 2]
    budget: {iters: 1200, val_every: 200, print_every: 10}
    data:                                # optional: render a synthetic GoPro-style set
      synthetic: {train_photos: [...], test_photos: [...], shake: {max_extent: 4}}
      grid: {crop_size: 128, step: 64}
    overrides:                           # every variant (dotted keys, as load_options takes)
      network_g.channels: [16, 20, 24]
    variants:
      - name: full
      - name: no_cem
        overrides: {network_g.use_cem: false, val.metrics.ssim_matlab: ~}   # ~ removes a key
    quick:                               # optional: what --quick changes beyond its tiny set-up
      overrides: {network_g.channels: [8, 8, 8]}

Every mistake is a ``StudyError`` naming the file and the key.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from basicsr_sgenet.integration.errors import OptionError, PreparationError, StudyError

NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
TOP_KEYS = ('name', 'description', 'base', 'seeds', 'budget', 'data', 'overrides', 'variants', 'quick', 'macs_size')
BUDGET_KEYS = ('iters', 'val_every', 'print_every')
DATA_KEYS = ('synthetic', 'seed', 'grid')


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict = field(default_factory=dict)
    description: str = ''
    base: Optional[str] = None  # its own base option file (peers: each model's recipe); None: the study's


@dataclass(frozen=True)
class Budget:
    """Training iterations of every run, validation (and checkpoint) interval, and how
    often the trainer prints progress. Equal for all variants: a study compares at equal
    iterations, with each variant's time reported beside it."""
    iters: int
    val_every: int
    print_every: int


@dataclass(frozen=True)
class SyntheticData:
    settings: object      # SyntheticGoProSettings
    grid: object          # SubimageGrid
    seed: int = 0


@dataclass
class Study:
    path: str
    name: str
    base: str
    seeds: List[int]
    budget: Budget
    variants: List[Variant]
    overrides: dict = field(default_factory=dict)
    data: Optional[SyntheticData] = None
    quick_overrides: dict = field(default_factory=dict)
    description: str = ''
    macs_size: Tuple[int, int] = (256, 256)

    def variant(self, name):
        return next(variant for variant in self.variants if variant.name == name)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class _Reader:
    """Checks values, raising StudyError '<file>: <key> ...'."""

    def __init__(self, path):
        self.path = path

    def fail(self, key, problem):
        raise StudyError(f'Study file {self.path}: {key} {problem}.')

    def mapping(self, value, key, optional=True):
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f'must be a mapping, got {value!r}')
        return value

    def known_keys(self, value, key, known):
        unknown = sorted(str(name) for name in value if name not in known)
        if unknown:
            self.fail(key, f'has unknown key(s) {", ".join(unknown)} (known: {", ".join(known)})')

    def positive_int(self, value, key):
        if not _is_int(value) or value < 1:
            self.fail(key, f'must be a positive integer, got {value!r}')
        return value

    def name(self, value, key):
        if not isinstance(value, str) or not NAME.match(value):
            self.fail(key, f'must be a name of letters, digits, "_", "-" or ".", got {value!r}')
        return value

    def overrides(self, value, key):
        value = self.mapping(value, key)
        for name in value:
            if not isinstance(name, str) or not name or any(not part for part in name.split('.')):
                self.fail(key, f'has a bad option key {name!r} (use dotted keys such as network_g.channels)')
        return dict(value)


def _read_budget(reader, value):
    budget = reader.mapping(value, 'budget', optional=False)
    reader.known_keys(budget, 'budget', BUDGET_KEYS)
    if 'iters' not in budget:
        reader.fail('budget.iters', 'is missing (training iterations per run)')
    iters = reader.positive_int(budget['iters'], 'budget.iters')
    val_every = reader.positive_int(budget.get('val_every', iters), 'budget.val_every')
    print_every = reader.positive_int(budget.get('print_every', min(10, val_every)), 'budget.print_every')
    if val_every % print_every:
        reader.fail('budget.val_every', f'({val_every}) must be a multiple of budget.print_every ({print_every}), '
                    'so each validation follows a progress line')
    return Budget(iters, val_every, print_every)


def _read_data(reader, value):
    from basicsr_sgenet.data.preparation import SubimageGrid
    from basicsr_sgenet.data.synthetic_gopro import SyntheticGoProSettings

    data = reader.mapping(value, 'data')
    if not data:
        return None
    reader.known_keys(data, 'data', DATA_KEYS)
    if 'synthetic' not in data:
        reader.fail('data.synthetic', 'is missing (the only data a study renders; leave data out to train on the '
                    "base option file's datasets)")
    try:
        settings = SyntheticGoProSettings.from_dict(reader.mapping(data['synthetic'], 'data.synthetic'),
                                                    where='data.synthetic')
    except (PreparationError, TypeError) as err:
        raise StudyError(f'Study file {reader.path}: {err}') from None
    grid = reader.mapping(data.get('grid'), 'data.grid')
    reader.known_keys(grid, 'data.grid', ('crop_size', 'step'))
    crop_size = reader.positive_int(grid.get('crop_size', 128), 'data.grid.crop_size')
    step = reader.positive_int(grid.get('step', crop_size // 2 or 1), 'data.grid.step')
    try:
        grid = SubimageGrid(crop_size, step)
    except PreparationError as err:
        raise StudyError(f'Study file {reader.path}: data.grid: {err}') from None
    seed = data.get('seed', 0)
    if not _is_int(seed):
        reader.fail('data.seed', f'must be an integer, got {seed!r}')
    return SyntheticData(settings, grid, seed)


def _read_variants(reader, value):
    if not isinstance(value, list) or not value:
        reader.fail('variants', 'must be a non-empty list of {name, overrides}')
    variants, seen = [], set()
    for index, entry in enumerate(value):
        key = f'variants[{index}]'
        entry = reader.mapping(entry, key, optional=False)
        reader.known_keys(entry, key, ('name', 'base', 'overrides', 'description'))
        name = reader.name(entry.get('name'), f'{key}.name')
        if name in seen:
            reader.fail(f'{key}.name', f'repeats the variant name {name!r}')
        seen.add(name)
        base = _read_base(reader, entry['base'], f'{key}.base') if 'base' in entry else None
        variants.append(Variant(name, reader.overrides(entry.get('overrides'), f'{key}.overrides'),
                                str(entry.get('description') or ''), base))
    return variants


def _read_base(reader, value, key):
    """An option file path, relative to the study file, that must exist."""
    if not isinstance(value, str) or not value:
        reader.fail(key, f'must be the path of an option file, got {value!r}')
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(reader.path)), os.path.expanduser(value)))
    if not os.path.isfile(path):
        reader.fail(key, f'names {value}, which does not exist ({path}; relative to the study file)')
    return path


def _read_seeds(reader, value):
    if not isinstance(value, list) or not value or not all(_is_int(seed) and seed >= 0 for seed in value):
        reader.fail('seeds', f'must be a non-empty list of integers >= 0, got {value!r}')
    if len(set(value)) != len(value):
        reader.fail('seeds', f'repeats a seed: {value!r}')
    return list(value)


def read_study(path):
    """The Study in ``path``; StudyError naming the file and key for any mistake."""
    from basicsr_sgenet.integration.options import read_option_file

    try:
        raw = read_option_file(path)
    except OptionError as err:
        raise StudyError(str(err).replace('Option file', 'Study file', 1)) from None
    reader = _Reader(path)
    reader.known_keys(raw, 'the top level', TOP_KEYS)
    for key in ('name', 'base', 'seeds', 'budget', 'variants'):
        if key not in raw:
            reader.fail(key, 'is missing')
    base = _read_base(reader, raw['base'], 'base')
    quick = reader.mapping(raw.get('quick'), 'quick')
    reader.known_keys(quick, 'quick', ('overrides',))
    macs_size = raw.get('macs_size', [256, 256])
    if not isinstance(macs_size, list) or len(macs_size) != 2 or not all(_is_int(s) and s > 0 for s in macs_size):
        reader.fail('macs_size', f'must be [height, width], got {macs_size!r}')
    return Study(
        path=path, name=reader.name(raw['name'], 'name'), base=base, seeds=_read_seeds(reader, raw['seeds']),
        budget=_read_budget(reader, raw['budget']), variants=_read_variants(reader, raw['variants']),
        overrides=reader.overrides(raw.get('overrides'), 'overrides'), data=_read_data(reader, raw.get('data')),
        quick_overrides=reader.overrides(quick.get('overrides'), 'quick.overrides'),
        description=str(raw.get('description') or ''), macs_size=tuple(macs_size))


def overrides_summary(overrides: Dict[str, object]):
    """``key=value, ...`` for a table cell."""
    return ', '.join(f'{key}=' + ('(removed)' if value is None else str(value))
                     for key, value in overrides.items()) or '(none)'
