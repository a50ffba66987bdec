"""Which option keys anything reads, to warn about misspelt ones (``train.mixed_precison``).

BasicSR and the plugin read options with ``opt['key']`` / ``opt.get('key')`` and ignore any
key nobody asks for, so a typo silently leaves a setting at its default. The known keys are
not a hand-kept list (it would rot): they are what the code reads, collected from the source
of BasicSR and of this plugin, plus the constructor arguments of the classes the option file
chooses (its metrics, the storage backend of each dataset, the distributed launcher,
the progressive-patch schedule).
A key outside them gets a warning naming the nearest known key.
"""
import difflib
import functools
import importlib.util
import inspect
import os
import re

# opt['key'], opt.get('key'), opt.pop('key', ...), opt.setdefault('key', ...), 'key' in opt
_READ_PATTERNS = (re.compile(r"""\[\s*['"]([A-Za-z_]\w*)['"]\s*\]"""),
                  re.compile(r"""\.(?:get|pop|setdefault)\(\s*['"]([A-Za-z_]\w*)['"]"""),
                  re.compile(r"""['"]([A-Za-z_]\w*)['"]\s+(?:not\s+)?in\s+\w*opt"""))


def _package_folder(name):
    spec = importlib.util.find_spec(name)
    return os.path.dirname(spec.origin) if spec and spec.origin else None


@functools.lru_cache(maxsize=None)
def keys_read_by_source(*packages):
    """Every name the Python source of ``packages`` reads as a mapping key."""
    keys = set()
    for package in packages:
        folder = _package_folder(package)
        for parent, _, names in os.walk(folder or ()):
            for name in names:
                if name.endswith('.py'):
                    with open(os.path.join(parent, name), encoding='utf-8', errors='replace') as f:
                        source = f.read()
                    for pattern in _READ_PATTERNS:
                        keys.update(pattern.findall(source))
    return frozenset(keys)


def parameter_names(function):
    """The named parameters of a function or class constructor (not *args/**kwargs)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return set()
    return {name for name, parameter in signature.parameters.items()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)}


def _metric_keys(metric_type):
    from basicsr.utils.registry import METRIC_REGISTRY
    try:
        metric = METRIC_REGISTRY.get(metric_type)
    except KeyError:
        return None
    # calculate_metric passes the whole mapping as keyword arguments and metrics swallow
    # what they do not name (**kwargs): only the named ones are read.
    return parameter_names(metric) | {'type', 'better'}


def _storage_keys(backend_type):
    from basicsr.utils.file_client import FileClient
    backend = FileClient._backends.get(backend_type)
    return parameter_names(backend) if backend is not None else set()


def _dist_keys():
    from basicsr.utils import dist_util
    return parameter_names(dist_util._init_dist_slurm)  # slurm passes dist_params as arguments


def unknown_keys(opt):
    """``[(dotted key, nearest known key or None)]`` for every key in ``opt`` that no code
    reads. Sections whose keys are names the user chooses (``datasets``, ``val.metrics``)
    and sections built by a constructor that refuses unknown arguments itself (networks,
    losses, optimizer, scheduler: checked by ``options.check_options``) are not walked."""
    read = keys_read_by_source('basicsr', 'basicsr_sgenet')
    found = []

    def walk(mapping, prefix, known):
        for key, value in mapping.items():
            dotted = f'{prefix}{key}'
            if not isinstance(key, str):
                continue
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
                found.append((dotted, f'{prefix}{close[0]}' if close else None))
            elif isinstance(value, dict) and _walked(dotted):
                walk(value, f'{dotted}.', _known_under(dotted, value, read))

    walk(opt, '', read)
    return found


def _walked(dotted):
    """Whether the keys under ``dotted`` are checked (see ``unknown_keys``)."""
    parts = dotted.split('.')
    if parts[0].startswith('network_') or parts[-1].endswith('_opt') or parts[-1] in ('optim_g', 'scheduler'):
        return False
    return True


def _known_under(dotted, value, read):
    parts = dotted.split('.')
    if parts == ['datasets'] or parts == ['val', 'metrics']:
        return _AnyName()
    if len(parts) == 3 and parts[:2] == ['val', 'metrics']:
        return _metric_keys(value.get('type')) or _AnyName()
    if parts[-1] == 'io_backend':
        return read | _storage_keys(value.get('type', 'disk'))
    if parts == ['dist_params']:
        return read | _dist_keys()
    if parts == ['train', 'progressive']:
        from basicsr_sgenet.models.progressive_patches import ProgressivePatches
        return frozenset(ProgressivePatches.OPTION_KEYS)
    return read


class _AnyName(frozenset):
    """Every key is known (a mapping of names the user chooses)."""

    def __contains__(self, key):
        return True


def warn_unknown_keys(opt, path, write):
    """``write`` one warning line per key of ``opt`` (read from ``path``) that nothing reads."""
    for dotted, nearest in unknown_keys(opt):
        hint = f'; did you mean {nearest}?' if nearest else ''
        write(f'warning: Option file {path}: {dotted} is not read by BasicSR, this plugin or the classes the file '
              f'chooses, so it has no effect{hint}')
