"""Choosing and loading the BasicSR training state (``<iter>.state``) to resume from.

A run killed at any moment leaves, at worst, a truncated newest state or newest weights
(``net_<label>_<iter>.pth``) and a temporary file of an interrupted save; resuming takes
the newest iteration whose state and weights are both complete, and names what it skips.
"""
import os
import pickle
import sys
import zipfile

import torch

from basicsr_sgenet.integration.atomic_files import leftover_writer, process_exists
from basicsr_sgenet.integration.errors import BadStateError, first_line



def load_state_file(path, map_location):
    """Load one BasicSR training state, or raise BadStateError naming the file."""
    if not os.path.isfile(path):
        raise BadStateError(f'Resume state {path} does not exist.')
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # A complete file holding an object torch's safe loader does not allow (e.g. a
        # custom scheduler's state): not truncation, and not something to load unsafely.
        raise BadStateError(f'Resume state {path} holds objects torch.load(weights_only=True) refuses '
                            f'({first_line(err)}).') from None
    except Exception as err:  # noqa: BLE001 -- damaged bytes make torch raise almost anything
        raise BadStateError(f'Resume state {path} cannot be read ({type(err).__name__}: {first_line(err)}); it '
                            'may be truncated.') from None
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


def remove_interrupted_saves(*folders):
    """Delete the temporary files of saves whose process is gone (killed mid-save), naming
    each; returns their paths. A save still running in another process is left alone."""
    removed = []
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            leftover = leftover_writer(name)  # patches.atomic_torch_save's temporary files
            if leftover and not process_exists(leftover[1]):
                path = os.path.join(folder, name)
                os.remove(path)
                removed.append(path)
                _warn(f'removed {path}, left by a save that was interrupted (the complete checkpoints are kept)')
    return removed


def weights_problem(path):
    """Why the weights file at ``path`` cannot be loaded (missing, truncated), or None.

    Checks the zip archive's directory, which torch.save writes last: a truncated file
    has none. Cheap, so every candidate of an auto-resume can be checked."""
    if not os.path.isfile(path):
        return f'no {os.path.basename(path)} in {os.path.dirname(path)}'
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return f'{path} is truncated or damaged ({first_line(err)})'
    return None


def find_resumable_state(state_dir, models_dir, network_labels, map_location):
    """Newest state in ``state_dir`` that loads and for which a complete
    ``net_<label>_<iter>.pth`` exists for every label in ``network_labels`` (``['g']``
    for ``network_g``).

    Returns ``(path, state)``, or None when no state was ever saved. Unusable states are
    skipped with a warning and never deleted; if states exist but none is usable this
    raises BadStateError rather than silently starting over. Temporary files of
    interrupted saves are removed first.
    """
    remove_interrupted_saves(state_dir, models_dir)
    if not os.path.isdir(state_dir):
        return None
    iters = _state_iters(state_dir)
    if not iters:
        return None
    reasons = []
    for it in iters:
        path = os.path.join(state_dir, f'{it}.state')
        problems = [problem for problem in (weights_problem(os.path.join(models_dir, f'net_{label}_{it}.pth'))
                                            for label in network_labels) if problem]
        if problems:
            reasons.append(f'resume state {path}: {"; ".join(problems)}')
        else:
            try:
                return path, load_state_file(path, map_location)
            except BadStateError as err:
                reasons.append(str(err))
        _warn(f'skipping {reasons[-1]}')
    raise BadStateError(f'--auto_resume found training states in {state_dir} but none is usable: '
                        f'{"; ".join(reasons)}. Fix or move them away, or run without --auto_resume to start '
                        'over (BasicSR then archives the experiment folder).')
