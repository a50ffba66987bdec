"""Finding and loading BasicSR training states (``<iter>.state``) safely."""
import os
import pickle
import sys

import torch


class BadStateError(RuntimeError):
    """A training-state file, or a folder of them, that cannot be used to resume."""


def load_state_file(path, map_location):
    """Load one BasicSR training state, or raise BadStateError naming the file."""
    if not os.path.isfile(path):
        raise BadStateError(f'Resume state {path} does not exist.')
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # A complete file holding an object torch's safe loader does not allow (e.g. a
        # custom scheduler's state): not truncation, and not something to load unsafely.
        first_line = str(err).strip().splitlines()[0]
        raise BadStateError(f'Resume state {path} holds objects torch.load(weights_only=True) refuses '
                            f'({first_line}).') from None
    except Exception as err:  # noqa: BLE001 -- damaged bytes make torch raise almost anything
        raise BadStateError(f'Resume state {path} cannot be read ({type(err).__name__}: {err}); it may be '
                            'truncated.') from None
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


def find_resumable_state(state_dir, models_dir, network_labels, map_location):
    """Newest state in ``state_dir`` that loads and for which ``net_<label>_<iter>.pth``
    exists for every label in ``network_labels`` (``['g']`` for ``network_g``).

    Returns ``(path, state)``, or None when no state was ever saved. Unusable states are
    skipped with a warning and never deleted; if states exist but none is usable this
    raises BadStateError rather than silently starting over.
    """
    if not os.path.isdir(state_dir):
        return None
    iters = _state_iters(state_dir)
    if not iters:
        return None
    saved_weights = set(os.listdir(models_dir)) if os.path.isdir(models_dir) else set()
    reasons = []
    for it in iters:
        path = os.path.join(state_dir, f'{it}.state')
        missing = [f'net_{label}_{it}.pth' for label in network_labels if f'net_{label}_{it}.pth' not in saved_weights]
        if missing:
            reasons.append(f'resume state {path}: no {", ".join(missing)} in {models_dir}')
        else:
            try:
                return path, load_state_file(path, map_location)
            except BadStateError as err:
                reasons.append(str(err))
        _warn(f'skipping {reasons[-1]}')
    raise BadStateError(f'--auto_resume found training states in {state_dir} but none is usable: '
                        f'{"; ".join(reasons)}. Fix or move them away, or run without --auto_resume to start '
                        'over (BasicSR then archives the experiment folder).')
