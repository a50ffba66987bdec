"""Finding and loading BasicSR training states (``<iter>.state``) safely."""
import os
import pickle
import sys
import zipfile

import torch


class BadStateError(RuntimeError):
    """A training-state file that cannot be used to resume."""


def load_state_file(path, map_location):
    """Load one BasicSR training state, or raise BadStateError naming the file."""
    if not os.path.isfile(path):
        raise BadStateError(f'Resume state {path} does not exist.')
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise BadStateError(f'Resume state {path} cannot be read ({err}); it may be truncated.') from None
    if not isinstance(state, dict) or 'iter' not in state or 'optimizers' not in state:
        raise BadStateError(f'Resume state {path} is not a BasicSR training state (no "iter"/"optimizers").')
    return state


def _state_iters(state_dir):
    """Iterations of the ``<iter>.state`` files in ``state_dir``, newest first."""
    iters = []
    for name in os.listdir(state_dir):
        stem, ext = os.path.splitext(name)
        if ext == '.state' and stem.isdigit():
            iters.append(int(stem))
    return sorted(iters, reverse=True)


def _warn(message):
    # Resume states are chosen before BasicSR sets up its log file, and calling its
    # get_root_logger() this early would stop it from ever adding that file: print, as
    # BasicSR's own pre-logging code does.
    print(f'Warning: {message}', file=sys.stderr, flush=True)


def find_resumable_state(state_dir, models_dir, map_location):
    """Newest state in ``state_dir`` that loads and whose ``net_*_<iter>.pth`` files exist.

    Returns ``(path, state)`` or None when there is nothing to resume from. Unusable
    states are skipped with a warning, never deleted: they stay for inspection.
    """
    if not os.path.isdir(state_dir):
        return None
    for it in _state_iters(state_dir):
        path = os.path.join(state_dir, f'{it}.state')
        try:
            state = load_state_file(path, map_location)
        except BadStateError as err:
            _warn(f'skipping {err}')
            continue
        if not any(name.endswith(f'_{it}.pth') for name in os.listdir(models_dir)):
            _warn(f'skipping resume state {path}: no network weights for iter {it} in {models_dir}.')
            continue
        return path, state
    return None
