"""Reading network weights files of any common layout, with errors a user can act on.

Used wherever weights are loaded: BasicSR's ``load_network`` (``path.pretrain_network_g``,
resuming; see ``patches.py``), the deblur CLI, export and compare. Accepted files: BasicSR
checkpoints (``{'params': ..., 'params_ema': ...}``; the EMA weights are preferred because
BasicSR validates with them when EMA is on), the wrappers other projects save
(``state_dict``: MPRNet; ``model``: MIMO-UNet), or a bare state dict. Prefixes added by
wrappers (``module.`` from DataParallel/DistributedDataParallel, ``_orig_mod.`` from
``torch.compile``) are stripped.
"""
import os
import pickle
import zipfile

import torch

from basicsr_sgenet.integration.errors import InferenceError, first_line

PREFERRED_KEYS = ('params_ema', 'params', 'state_dict', 'model')
WRAPPER_PREFIXES = ('module.', '_orig_mod.')
# How many key names an error message shows per kind of problem.
SHOWN_KEYS = 4


def _strip_prefixes(key):
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _is_state_dict(value):
    return isinstance(value, dict) and value and all(torch.is_tensor(v) for v in value.values())


def read_state_dict(path, param_key=None, prefer=None):
    """The state dict stored in ``path`` and the key it was found under (None: the file
    is a bare state dict).

    Args:
        param_key (str | None): the entry to load; an error if the file lacks it.
        prefer (str | None): without ``param_key``, the entry to try before the usual
            ones (``PREFERRED_KEYS``), e.g. BasicSR's ``path.param_key_g``.
    """
    if not os.path.isfile(path):
        raise InferenceError(f'Weights file {path} does not exist')
    with open(path, 'rb') as f:
        starts_like_zip = f.read(4) == b'PK\x03\x04'
    if starts_like_zip and not zipfile.is_zipfile(path):
        # torch.save has written zip archives since PyTorch 1.6; the archive's directory
        # comes last, so a truncated file starts like one but has none.
        raise InferenceError(f'Weights file {path} is truncated (a zip archive without its directory)')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses arbitrary Python objects: say which one, not torch's essay.
        detail = next((line.strip() for line in str(err).splitlines() if 'Unsupported global' in line),
                      first_line(err))
        raise InferenceError(f'Weights file {path} holds Python objects other than tensors, which are not loaded '
                             f'for safety ({detail}); re-save just the state dict') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise InferenceError(f'Weights file {path} cannot be loaded as PyTorch weights ({first_line(err)})') from None
    if param_key is not None:
        if not isinstance(checkpoint, dict) or param_key not in checkpoint:
            keys = list(checkpoint) if isinstance(checkpoint, dict) else []
            raise InferenceError(f'Weights file {path} has no "{param_key}" entry (top-level keys: '
                                 f'{", ".join(map(str, keys[:SHOWN_KEYS])) or "none"})')
        state, key = checkpoint[param_key], param_key
    elif _is_state_dict(checkpoint):
        state, key = checkpoint, None
    else:
        candidates = ((prefer, ) if prefer else ()) + PREFERRED_KEYS
        key = next((k for k in candidates if isinstance(checkpoint, dict) and k in checkpoint), None)
        if key is None:
            keys = list(checkpoint)[:SHOWN_KEYS] if isinstance(checkpoint, dict) else []
            raise InferenceError(f'Weights file {path} holds no state dict: expected a BasicSR checkpoint '
                                 f'({"/".join(PREFERRED_KEYS)}) or a bare state dict, found '
                                 f'{"keys " + ", ".join(map(str, keys)) if keys else type(checkpoint).__name__}')
        state = checkpoint[key]
    if not _is_state_dict(state):
        raise InferenceError(f'Weights file {path}: entry "{key}" is not a state dict of tensors')
    return {_strip_prefixes(name): tensor for name, tensor in state.items()}, key


def _examples(names):
    shown = ', '.join(names[:SHOWN_KEYS])
    return shown + (', ...' if len(names) > SHOWN_KEYS else '')


def describe_mismatch(network_state, file_state):
    """One sentence about how two state dicts differ, or None if they fit."""
    # In state-dict order: the first keys of a network are the recognisable ones.
    missing = [name for name in network_state if name not in file_state]
    unexpected = [name for name in file_state if name not in network_state]
    reshaped = [name for name in network_state
                if name in file_state and network_state[name].shape != file_state[name].shape]
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys ({_examples(missing)})')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys ({_examples(unexpected)})')
    if reshaped:
        shown = ', '.join(f'{name}: file {tuple(file_state[name].shape)} vs network '
                          f'{tuple(network_state[name].shape)}' for name in reshaped[:SHOWN_KEYS])
        problems.append(f'{len(reshaped)} keys with other shapes ({shown}{", ..." if len(reshaped) > SHOWN_KEYS else ""})')
    return '; '.join(problems) or None


def load_weights(network, path, param_key=None, network_description=None):
    """Load ``path`` into ``network`` strictly; returns the checkpoint key used."""
    file_state, key = read_state_dict(path, param_key)
    mismatch = describe_mismatch(network.state_dict(), file_state)
    if mismatch:
        target = network_description or type(network).__name__
        where = f' (entry "{key}")' if key else ''
        raise InferenceError(f'Weights file {path}{where} does not fit {target}: {mismatch}. Was it trained with '
                             'another arch or other arch arguments? Set them with --arch/--arch-args or --opt.')
    network.load_state_dict(file_state, strict=True)
    return key
