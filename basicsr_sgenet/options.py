"""Reading BasicSR option files, and checking them before any work starts.

One reader for every entry point (train, test, deblur, export, compare, the demo and
studies): BasicSR's own YAML dialect (``!!float``, ``!!python/tuple``), overrides given as
nested mappings or dotted keys, and ``--force_yml`` entries applied as BasicSR applies
them. ``check_options`` catches, before a run creates a folder, the mistakes that would
otherwise end in a traceback after hundreds of log lines.
"""
import copy
import os

from basicsr_sgenet.errors import InferenceError, OptionError, first_line


def read_option_file(path):
    """The options in ``path`` as a dict; OptionError naming the file if it cannot be read."""
    import yaml
    from basicsr.utils.options import ordered_yaml

    if not path or not os.path.isfile(path):
        raise OptionError(f'Option file {path} does not exist.')
    try:
        with open(path) as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])  # BasicSR's own loader, tags and all
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        detail = getattr(err, 'problem', None) or first_line(err)
        raise OptionError(f'Option file {path} is not valid YAML{where}: {detail}.') from None
    if not isinstance(opt, dict):
        raise OptionError(f'Option file {path} must be a YAML mapping of options.')
    return _plain(opt)


def _plain(value):
    """BasicSR's loader makes OrderedDicts: plain (ordered) dicts read and dump the same."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def write_option_file(path, opt, header=''):
    """Write ``opt`` as a BasicSR option file (``header``: comment lines to put first)."""
    import yaml

    def lists(value):  # safe_dump writes no tuples
        if isinstance(value, dict):
            return {key: lists(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [lists(item) for item in value]
        return value

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(header)
        yaml.safe_dump(lists(opt), f, sort_keys=False)
    return path


def set_option(opt, key, value, separator='.'):
    """``opt[a][b][c] = value`` for ``key`` 'a.b.c', creating missing mappings."""
    *parents, last = key.split(separator)
    node = opt
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def remove_option(opt, key):
    """Delete the dotted ``key`` from ``opt`` if present (e.g. one of a base file's
    ``val.metrics``, which an override can only change, not remove)."""
    *parents, last = key.split('.')
    node = opt
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)
    return opt


def with_overrides(opt, overrides):
    """A deep copy of ``opt`` with ``overrides`` applied: a mapping whose keys may be dotted
    (``network_g.channels``) and whose mapping values merge into existing mappings."""
    result = copy.deepcopy(opt)

    def merge(key, value):
        *parents, last = key.split('.')
        node = result
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise OptionError(f'override {key}: {".".join(parents)} is not a mapping')
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            for child, child_value in value.items():
                merge(f'{key}.{child}', child_value)
        else:
            node[last] = copy.deepcopy(value)

    for key, value in (overrides or {}).items():
        merge(str(key), value)
    return result


def apply_overrides(opt, overrides):
    """``with_overrides``, except that a value of None (``~`` in YAML) removes the key:
    a study can drop one of the base file's metrics, not only change it."""
    opt = with_overrides(opt, {key: value for key, value in overrides.items() if value is not None})
    for key in (key for key, value in overrides.items() if value is None):
        remove_option(opt, key)
    return opt


def apply_force_yml(opt, entries):
    """BasicSR's ``--force_yml a:b=value`` entries, with BasicSR's own value parsing."""
    from basicsr.utils.options import _postprocess_yml_value
    for entry in entries or ():
        keys, separator, value = entry.partition('=')
        if not separator:
            raise OptionError(f'--force_yml {entry}: expected key:subkey=value')
        set_option(opt, keys.strip(), _postprocess_yml_value(value.strip()), separator=':')
    return opt


def load_options(path, overrides=None):
    """``read_option_file(path)`` with ``overrides`` (see ``with_overrides``)."""
    return with_overrides(read_option_file(path), overrides)


# ----------------------------------------------------------------------------- checks

def _registered(registry, name):
    # BasicSR registers some classes under a suffixed name (``SRVGGNetCompact_basicsr``)
    # and Registry.get falls back to it.
    return isinstance(name, str) and (name in registry or f'{name}_basicsr' in registry)


def _known(registry):
    return ', '.join(sorted(name for name, _ in registry))


def _run_device_type(opt):
    """'cuda' or 'cpu': where BasicSR's models will run this option file."""
    import torch
    num_gpu = opt.get('num_gpu', 'auto')
    if num_gpu == 'auto':
        num_gpu = torch.cuda.device_count()
    return 'cuda' if num_gpu and torch.cuda.is_available() else 'cpu'


def _check_networks(opt, where):
    import torch
    from basicsr.utils.registry import ARCH_REGISTRY
    for key, value in opt.items():
        if not key.startswith('network_'):
            continue
        arch = value.get('type') if isinstance(value, dict) else None
        if not _registered(ARCH_REGISTRY, arch):
            raise OptionError(f'{where}: {key}.type is {arch!r}, which is not a registered arch '
                              f'(known: {_known(ARCH_REGISTRY)}).')
        kwargs = {name: arg for name, arg in value.items() if name != 'type'}
        try:
            with torch.device('meta'):  # shapes only: the paper-size SGENet builds in milliseconds
                ARCH_REGISTRY.get(arch)(**kwargs)
        except (TypeError, ValueError) as err:
            raise OptionError(f'{where}: {key} cannot be built ({first_line(err)}).') from None
        except Exception:  # noqa: BLE001 -- an arch that needs real tensors to build: BasicSR will tell
            pass


def _check_registered_types(opt, where):
    from basicsr.utils.registry import DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
    if not _registered(MODEL_REGISTRY, opt.get('model_type')):
        raise OptionError(f'{where}: model_type is {opt.get("model_type")!r}, which is not a registered model '
                          f'(known: {_known(MODEL_REGISTRY)}).')
    for phase, dataset in (opt.get('datasets') or {}).items():
        if isinstance(dataset, dict) and not _registered(DATASET_REGISTRY, dataset.get('type')):
            raise OptionError(f'{where}: datasets.{phase}.type is {dataset.get("type")!r}, which is not a registered '
                              f'dataset (known: {_known(DATASET_REGISTRY)}).')
    for key, loss in (opt.get('train') or {}).items():
        if key.endswith('_opt') and isinstance(loss, dict) and not _registered(LOSS_REGISTRY, loss.get('type')):
            raise OptionError(f'{where}: train.{key}.type is {loss.get("type")!r}, which is not a registered loss '
                              f'(known: {_known(LOSS_REGISTRY)}).')
    for name, metric in ((opt.get('val') or {}).get('metrics') or {}).items():
        if isinstance(metric, dict) and not _registered(METRIC_REGISTRY, metric.get('type')):
            raise OptionError(f'{where}: val.metrics.{name}.type is {metric.get("type")!r}, which is not a registered '
                              f'metric (known: {_known(METRIC_REGISTRY)}).')


def _smallest_image_side(root, backend):
    """The smallest height or width among the images of a dataset folder (LMDB: from its
    meta_info.txt; a folder of images: from the first image), or None if unknown."""
    if backend == 'lmdb':
        sizes = []
        with open(os.path.join(root, 'meta_info.txt')) as f:
            for line in f:
                parts = line.split(' (', 1)
                if len(parts) == 2:  # "<key>.png (h,w,c) <compression>"
                    sizes += [int(value) for value in parts[1].split(')')[0].split(',')[:2]]
        return min(sizes) if sizes else None
    import cv2
    names = sorted(name for name in os.listdir(root) if not name.startswith('.'))
    image = cv2.imread(os.path.join(root, names[0]), cv2.IMREAD_UNCHANGED) if names else None
    return None if image is None else min(image.shape[:2])


def _check_datasets(opt, where, is_train):
    from basicsr_sgenet.data.lmdb_integrity import lmdb_problem
    for phase, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict):
            raise OptionError(f'{where}: datasets.{phase} must be a mapping.')
        backend = (dataset.get('io_backend') or {}).get('type', 'disk')
        for key in ('dataroot_gt', 'dataroot_lq'):
            root = dataset.get(key)
            if root is None:
                continue
            root = os.path.expanduser(str(root))
            if not os.path.exists(root):
                raise OptionError(f'{where}: datasets.{phase}.{key}: {root} does not exist (relative paths are '
                                  f'relative to the current directory, {os.getcwd()}).')
            problem = lmdb_problem(root) if backend == 'lmdb' else None
            if problem is None and backend == 'lmdb' and not os.path.isfile(os.path.join(root, 'meta_info.txt')):
                problem = f'{root} has no meta_info.txt'
            if problem:
                raise OptionError(f'{where}: datasets.{phase}.{key}: {problem}.')
        gt_size = dataset.get('gt_size')
        if is_train and phase == 'train' and gt_size and dataset.get('dataroot_gt'):
            smallest = _smallest_image_side(os.path.expanduser(str(dataset['dataroot_gt'])), backend)
            if smallest is not None and gt_size > smallest:
                raise OptionError(f'{where}: datasets.train.gt_size is {gt_size}, larger than the smallest training '
                                  f'image side ({smallest} px in {dataset["dataroot_gt"]}); crops must fit.')
        total = dataset.get('total_batch_size')
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 1):
            raise OptionError(f'{where}: datasets.{phase}.total_batch_size must be a positive integer, got {total!r}.')


def _check_training(opt, where):
    train = opt.get('train') or {}
    scheduler = train.get('scheduler') or {}
    total_iter = train.get('total_iter')
    if total_iter is None or isinstance(total_iter, bool) or not isinstance(total_iter, (int, float)):
        raise OptionError(f'{where}: train.total_iter must be a number of iterations, got {total_iter!r}.')
    periods = scheduler.get('periods')
    if scheduler.get('type', '').startswith('CosineAnnealingRestart') and periods and sum(periods) < total_iter:
        raise OptionError(f'{where}: train.scheduler.periods add up to {sum(periods)}, fewer than train.total_iter '
                          f'({int(total_iter)}); the schedule must cover every iteration (to train longer, '
                          'lengthen the last period too).')
    if opt.get('model_type') in ('DeblurModel', 'SGENetModel'):
        _check_deblur_model_training(train, where)


def _check_deblur_model_training(train, where):
    """What DeblurModel adds to SRModel's training options."""
    import torch

    from basicsr_sgenet.models.progressive_patches import ProgressivePatches
    optimizer = (train.get('optim_g') or {}).get('type')
    if optimizer is not None and not (isinstance(getattr(torch.optim, str(optimizer), None), type)):
        raise OptionError(f'{where}: train.optim_g.type is {optimizer!r}, which is not a torch.optim optimizer '
                          '(e.g. Adam, AdamW).')
    clip = train.get('grad_clip_norm')
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip <= 0):
        raise OptionError(f'{where}: train.grad_clip_norm must be a positive number (or left out), not {clip!r}.')
    try:
        ProgressivePatches.from_options(train)
    except OptionError as err:
        raise OptionError(f'{where}: {err}') from None


def _check_precisions(opt, where):
    from basicsr_sgenet.precision import option_precision
    for section in ('train', 'val'):
        try:
            option_precision(opt, section, _run_device_type(opt))
        except OptionError as err:
            raise OptionError(f'{where}: {err}') from None


def _weights_file_problem(path):
    """Why the checkpoint ``path`` is certainly unusable (empty, or a zip-format torch file
    cut short), or None. Files in torch's legacy format are left to the loader: only
    loading them tells."""
    from basicsr_sgenet.resume import weights_problem
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        return f'{path} is empty'
    return weights_problem(path) if head == b'PK\x03\x04' else None


def _check_paths_and_dist(opt, where):
    from basicsr_sgenet.weights import fetch_weights, is_url
    for key, value in (opt.get('path') or {}).items():
        if value and 'pretrain_network' in key and is_url(value):
            # Downloaded (once) now, so an unreachable URL or a wrong pin stops the run before BasicSR starts.
            try:
                path = fetch_weights(value)
            except InferenceError as err:
                raise OptionError(f'{where}: path.{key}: {err}.') from None
            value = path
        if value and ('pretrain_network' in key or key == 'resume_state'):
            path = os.path.expanduser(str(value))
            if not os.path.isfile(path):
                raise OptionError(f'{where}: path.{key}: {value} does not exist.')
            problem = _weights_file_problem(path)
            if problem:
                raise OptionError(f'{where}: path.{key}: {problem}.')
    dist_params = opt.get('dist_params') or {}
    if not isinstance(dist_params, dict):
        raise OptionError(f'{where}: dist_params must be a mapping.')
    timeout = dist_params.get('timeout_minutes')
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise OptionError(f'{where}: dist_params.timeout_minutes must be a positive number, not {timeout!r}.')
    backend = dist_params.get('backend')
    if backend not in (None, 'nccl', 'gloo'):
        raise OptionError(f'{where}: dist_params.backend must be nccl or gloo (or left out), not {backend!r}.')


def check_options(opt, path, is_train=True, check_data=True):
    """Raise OptionError, naming ``path`` and the key, for anything that would make BasicSR
    fail after it has started: unknown types, arch arguments the arch rejects, missing or
    damaged datasets, crops larger than the images, a precision the hardware cannot run,
    a schedule shorter than the run, missing or truncated weights and resume states, bad
    distributed settings. ``check_data=False`` skips the datasets (for callers that create
    them after checking the rest)."""
    where = f'Option file {path}'
    for key in ('name', 'model_type'):
        if key not in opt:
            raise OptionError(f'{where} has no "{key}" key.')
    _check_registered_types(opt, where)
    _check_networks(opt, where)
    if check_data:
        _check_datasets(opt, where, is_train)
    if is_train and 'train' in opt:
        _check_training(opt, where)
    _check_precisions(opt, where)
    _check_paths_and_dist(opt, where)
    return opt
