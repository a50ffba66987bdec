"""Reading network weights files of any common layout, with errors a user can act on.

Used wherever weights are loaded: BasicSR's ``load_network`` (``path.pretrain_network_g``,
resuming; see ``patches.py``), the deblur CLI, export and compare. Accepted files: BasicSR
checkpoints (``{'params': ..., 'params_ema': ...}``; the EMA weights are preferred because
BasicSR validates with them when EMA is on), the wrappers other projects save
(``state_dict``: MPRNet; ``model``: MIMO-UNet), or a bare state dict. Prefixes added by
wrappers (``module.`` from DataParallel/DistributedDataParallel, ``_orig_mod.`` from
``torch.compile``) are stripped.

Wherever a weights file is named, an ``https://`` (or ``http://``) URL works too: it is
downloaded once into torch hub's cache (``torch.hub.get_dir()/checkpoints``, i.e.
``$TORCH_HOME/hub/checkpoints``) with torch.hub's downloader and progress bar, and read
from there afterwards. A ``#sha256=<64 hex digits>`` suffix pins the file: a download
with another hash is not kept. A file only takes its name in the cache once it is
complete (and matches its pin), so an interrupted download is never mistaken for the
checkpoint.
"""
import hashlib
import http.client
import os
import pickle
import re
import urllib.error
import urllib.parse
import uuid
import zipfile

import torch

from basicsr_sgenet.integration.errors import InferenceError, first_line

PREFERRED_KEYS = ('params_ema', 'params', 'state_dict', 'model')
WRAPPER_PREFIXES = ('module.', '_orig_mod.')
# How many key names an error message shows per kind of problem.
SHOWN_KEYS = 4


URL_SCHEMES = ('https://', 'http://')
PIN_PREFIX = 'sha256='


def is_url(location):
    """Whether ``location`` (a --weights value, a path.pretrain_network_* entry) is a URL."""
    return isinstance(location, str) and location.lower().startswith(URL_SCHEMES)


def split_pin(location):
    """``(url, sha256 hex or None)`` of ``https://host/file.pth[#sha256=<hex>]``."""
    url, hash_sign, fragment = location.partition('#')
    if not hash_sign:
        return url, None
    digest = fragment[len(PIN_PREFIX):].lower() if fragment.startswith(PIN_PREFIX) else None
    if digest is None or not re.fullmatch('[0-9a-f]{64}', digest):
        raise InferenceError(f'Weights URL {location}: what follows "#" must be sha256=<the file\'s 64 hex digit '
                             'SHA-256>, e.g. from sha256sum')
    return url, digest


def weights_cache_dir():
    """Where downloaded weights are kept: torch hub's checkpoint cache (``$TORCH_HOME``)."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints')


def cached_path(url):
    """The cache file of ``url`` (without its pin): the URL's file name tagged with a hash
    of the whole URL, so two sites' ``net_g_latest.pth`` never share a file."""
    name = os.path.basename(urllib.parse.urlparse(url).path) or 'weights.pth'
    stem, ext = os.path.splitext(re.sub(r'[^A-Za-z0-9._-]', '_', urllib.parse.unquote(name)))
    tag = hashlib.sha256(url.encode()).hexdigest()[:8]
    return os.path.join(weights_cache_dir(), f'{stem.lstrip(".") or "weights"}-{tag}{ext}')


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def fetch_weights(location, progress=True):
    """The local file for ``location``: a path as it is, a URL downloaded once into the
    cache (again if its pin does not match the cached file). InferenceError, naming the
    URL, when it cannot be downloaded or does not match its pin."""
    if not is_url(location):
        return location
    url, digest = split_pin(location)
    target = cached_path(url)
    if os.path.isfile(target) and (digest is None or file_sha256(target) == digest):
        return target
    folder = os.path.dirname(target)
    temporary = os.path.join(folder, f'.{os.path.basename(target)}.download-{uuid.uuid4().hex}')
    try:
        os.makedirs(folder, exist_ok=True)
        # torch.hub writes to <dst>.<uuid>.partial and renames it to ``temporary`` when the
        # download is complete and matches ``hash_prefix``; a checked file then takes its name.
        torch.hub.download_url_to_file(url, temporary, hash_prefix=digest, progress=progress)
        problem = _download_problem(temporary)
        if problem:
            raise InferenceError(f'Weights downloaded from {url} are {problem}; the file was not kept')
        os.replace(temporary, target)
    except InferenceError:
        raise
    except urllib.error.HTTPError as err:
        raise InferenceError(f'Cannot download weights from {url}: HTTP {err.code} {err.reason}') from None
    except urllib.error.URLError as err:
        raise InferenceError(f'Cannot download weights from {url} ({err.reason}); check the address and the '
                             'network connection, or download the file and give its path') from None
    except RuntimeError as err:
        if 'invalid hash value' not in str(err):
            raise
        got = re.search(r'got "([0-9a-f]+)"', str(err))
        raise InferenceError(f'Weights downloaded from {url} do not match the pinned sha256 {digest} (the file '
                             f'has {got.group(1) if got else "another hash"}); the file was not kept') from None
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise InferenceError(f'Cannot download weights from {url} into {folder} ({first_line(err)})') from None
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
    return target


def _download_problem(path):
    """Why a downloaded file is certainly not complete weights (empty, or a zip archive,
    as torch.save writes, cut short: HTTP cannot always tell), or None."""
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        return 'empty'
    if head == b'PK\x03\x04' and not zipfile.is_zipfile(path):
        return 'truncated (a zip archive without its directory)'
    return None


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
    """The state dict stored in ``path`` (a file or URL, see ``fetch_weights``) and the key
    it was found under (None: the file is a bare state dict).

    Args:
        param_key (str | None): the entry to load; an error if the file lacks it.
        prefer (str | None): without ``param_key``, the entry to try before the usual
            ones (``PREFERRED_KEYS``), e.g. BasicSR's ``path.param_key_g``.
    """
    path = fetch_weights(path)
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
