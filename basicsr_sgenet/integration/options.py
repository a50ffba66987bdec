"""Reading BasicSR option files, and checking them before any work starts.

One reader for every entry point (train, test, deblur, export, compare, the demo and
studies): standard YAML with BasicSR's tags (``!!float 2e-4``) and never a tag that builds
Python objects (``safe_yaml``), overrides given as
nested mappings or dotted keys, and ``--force_yml`` entries applied as BasicSR applies
them. ``check_options`` catches, before a run creates a folder, the mistakes that would
otherwise end in a traceback after hundreds of log lines.
"""
import contextlib
import copy
import os

from basicsr_sgenet.integration.atomic_files import atomic_write
from basicsr_sgenet.integration.errors import InferenceError, OptionError, first_line


def read_option_file(path):
    """The options in ``path`` as a dict; OptionError naming the file if it cannot be read.
    Read with the safe reader (``safe_yaml``): standard YAML tags only, nothing in the file
    can run code."""
    import yaml

    from basicsr_sgenet.integration import safe_yaml

    if not path or not os.path.isfile(path):
        raise OptionError(f'Option file {path} does not exist.')
    try:
        opt = safe_yaml.load_file(path)
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        detail = getattr(err, 'problem', None) or first_line(err)
        raise OptionError(f'Option file {path} is not valid YAML{where}: {detail}.') from None
    except UnicodeDecodeError:
        raise OptionError(f'Option file {path} is not UTF-8 text.') from None
    if not isinstance(opt, dict):
        raise OptionError(f'Option file {path} must be a YAML mapping of options.')
    return opt


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
    with atomic_write(path, 'w', durable=False) as f:
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
        # A loss that needs files (StripformerLoss's VGG19 weights) says what is wrong before the run starts.
        check = getattr(LOSS_REGISTRY.get(loss['type']), 'option_problem', None) if (
            key.endswith('_opt') and isinstance(loss, dict)) else None
        problem = check(loss) if check else None
        if problem:
            raise OptionError(f'{where}: train.{key}.{problem}.')
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


def _scheduler_class(name):
    """The class BasicSR's (or DeblurModel's) setup_schedulers builds for ``name``, or None."""
    from basicsr.models import lr_scheduler

    from basicsr_sgenet.models import lr_scheduler as plugin_schedulers
    name = {'MultiStepLR': 'MultiStepRestartLR'}.get(name, name)
    return getattr(lr_scheduler, str(name), None) or getattr(plugin_schedulers, str(name), None)


def _arguments_problem(function, kwargs, *positional):
    """Why ``function(*positional, **kwargs)`` cannot be called (unknown or missing
    arguments, with the nearest known name), or None. Nothing is called."""
    import difflib
    import inspect
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*positional, **kwargs)
        return None
    except TypeError as err:
        names = [name for name, parameter in signature.parameters.items()
                 if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)]
        unknown = [key for key in kwargs if key not in names]
        if not unknown or any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            return f'{getattr(function, "__name__", function)}: {err}'
        hints = [f'{key} -> {close[0]}?' for key in unknown for close in [difflib.get_close_matches(key, names, 1)]
                 if close]
        return (f'{function.__name__}: unknown argument(s) {", ".join(unknown)}'
                + (f' ({", ".join(hints)})' if hints else '') + f'; it takes {", ".join(names[len(positional):])}')


def _check_constructor_arguments(opt, where):
    """The optimizer, scheduler and losses are built with the option mappings as keyword
    arguments after the run's folders exist: check the arguments against their signatures."""
    import torch
    from basicsr.utils.registry import LOSS_REGISTRY
    train = opt.get('train') or {}
    sections = []
    optimizer = train.get('optim_g')
    if isinstance(optimizer, dict) and isinstance(getattr(torch.optim, str(optimizer.get('type')), None), type):
        sections.append(('train.optim_g', getattr(torch.optim, optimizer['type']), optimizer, (None,)))
    scheduler = train.get('scheduler')
    if isinstance(scheduler, dict) and _scheduler_class(scheduler.get('type')) is not None:
        sections.append(('train.scheduler', _scheduler_class(scheduler['type']), scheduler, (None,)))
    for key, loss in train.items():
        if key.endswith('_opt') and isinstance(loss, dict) and _registered(LOSS_REGISTRY, loss.get('type')):
            sections.append((f'train.{key}', LOSS_REGISTRY.get(loss['type']), loss, ()))
    for key, function, settings, positional in sections:
        kwargs = {name: value for name, value in settings.items() if name != 'type'}
        problem = _arguments_problem(function, kwargs, *positional)
        if problem:
            raise OptionError(f'{where}: {key} cannot be built ({problem}).')


def _check_precisions(opt, where):
    from basicsr_sgenet.integration.precision import option_precision
    for section in ('train', 'val'):
        try:
            option_precision(opt, section, _run_device_type(opt))
        except OptionError as err:
            raise OptionError(f'{where}: {err}') from None


def _weights_file_problem(path):
    """Why the checkpoint ``path`` is certainly unusable (empty, or a zip-format torch file
    cut short), or None. Files in torch's legacy format are left to the loader: only
    loading them tells."""
    from basicsr_sgenet.integration.resume import weights_problem
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        return f'{path} is empty'
    return weights_problem(path) if head == b'PK\x03\x04' else None


def _check_paths_and_dist(opt, where):
    from basicsr_sgenet.integration.weights import fetch_weights, is_url
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
        _check_constructor_arguments(opt, where)
    _check_precisions(opt, where)
    _check_paths_and_dist(opt, where)
    return opt


# ----------------------------------------------------------------------------- train/test pre-flight

# Keys BasicSR 1.4.2 reads with opt[...] (no default) on every run: missing, each is a
# KeyError traceback, for most after the experiment folder was archived and a new one made.
_REQUIRED_KEYS = {
    True: ('datasets', 'path', 'num_gpu', 'network_g', 'logger', 'logger.print_freq',
           'logger.save_checkpoint_freq', 'train.optim_g', 'train.optim_g.type', 'train.scheduler',
           'train.scheduler.type', 'datasets.train'),
    False: ('datasets', 'path', 'num_gpu', 'network_g', 'val', 'val.save_img'),
}
# Read by BasicSR's paired datasets without a default (basicsr/data/paired_image_dataset.py).
_PAIRED_DATASET_KEYS = ('name', 'io_backend', 'dataroot_gt', 'dataroot_lq')


def _lookup(opt, dotted):
    node = opt
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def _missing_key(opt, is_train):
    """The first dotted key BasicSR will read without a default that ``opt`` lacks, or None."""
    required = list(_REQUIRED_KEYS[is_train])
    if is_train:
        if _lookup(opt, 'val') is not _MISSING:
            required += ['val.val_freq', 'val.save_img']
        if _lookup(opt, 'datasets.train.total_batch_size') in (_MISSING, None):
            required += ['datasets.train.batch_size_per_gpu']
        required += ['datasets.train.num_worker_per_gpu']
    elif _lookup(opt, 'val.save_img') is True:
        required += ['val.suffix']  # SRModel names test images with it
    for dotted in required:
        value = _lookup(opt, dotted)
        if value is _MISSING:
            return dotted
    for phase, dataset in (opt.get('datasets') or {}).items():
        if not isinstance(dataset, dict) or dataset.get('type') not in ('PairedImageDataset', 'PairedFlipDataset'):
            continue
        for key in _PAIRED_DATASET_KEYS + (('gt_size',) if phase == 'train' else ()):
            if key not in dataset:
                return f'datasets.{phase}.{key}'
        if 'scale' not in dataset and 'scale' not in opt:
            return 'scale'
    return None


def _check_required_keys(opt, where, is_train):
    missing = _missing_key(opt, is_train)
    if missing:
        raise OptionError(f'{where} has no "{missing}" key, which BasicSR\'s {"training" if is_train else "test"} '
                          'reads without a default.')


def check_run_name(opt, where):
    """``name`` becomes a folder under experiments/ or results/ that BasicSR renames if it
    exists: it must be one plain folder name, or BasicSR would rename an unrelated folder."""
    name = opt.get('name')
    if not isinstance(name, str) or not name.strip():
        raise OptionError(f'{where}: name must be a non-empty text (the run\'s folder name), not {name!r}.')
    if os.path.isabs(name) or '/' in name or '\\' in name or name in ('.', '..') or '..' in name.split(os.sep):
        raise OptionError(f'{where}: name {name!r} is not a plain folder name (no slashes, no "..", not absolute): '
                          'BasicSR makes experiments/<name> (results/<name> in tests) and renames the folder of '
                          'that name if it exists, which here would be a folder outside them.')


def _resumes(opt, auto_resume, experiments_root):
    """Whether BasicSR will resume (and so not archive the experiment folder)."""
    if (opt.get('path') or {}).get('resume_state'):
        return True
    states = os.path.join(experiments_root, 'training_states')
    return bool(auto_resume and os.path.isdir(states) and any(name.endswith('.state') for name in os.listdir(states)))


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _input_paths(opt, option_file):
    """(key, path) of every file or folder the run reads."""
    yield 'the option file itself', option_file
    for key, value in (opt.get('path') or {}).items():
        if value and isinstance(value, str) and ('pretrain_network' in key or key == 'resume_state'):
            yield f'path.{key}', os.path.expanduser(value)
    for phase, dataset in (opt.get('datasets') or {}).items():
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
            value = dataset.get(key) if isinstance(dataset, dict) else None
            if value and isinstance(value, str):
                yield f'datasets.{phase}.{key}', os.path.expanduser(value)


def check_run_folders(opt, option_file, root, is_train, auto_resume=False):
    """What BasicSR does to the run's folders under ``root`` must not harm the run's inputs:
    a new training run (or any test run) renames an existing experiments/<name> (results/<name>)
    to <name>_archived_<time> before it reads anything; a resume state must come from this
    run's own folder, where BasicSR looks for the weights that go with it."""
    where = f'Option file {option_file}'
    name = opt['name']
    folder = os.path.join(root, 'experiments' if is_train else 'results', name)
    archived = [folder] if os.path.exists(folder) and not (is_train and _resumes(opt, auto_resume, folder)) else []
    tb_folder = os.path.join(root, 'tb_logger', name)
    if is_train and os.path.exists(tb_folder) and not _resumes(opt, auto_resume, folder):
        archived.append(tb_folder)
    for key, path in _input_paths(opt, option_file):
        for target in archived:
            if _inside(path, target):
                raise OptionError(f'{where}: {key} ({path}) is inside {target}, which this run renames to '
                                  f'{os.path.basename(target)}_archived_<time> before reading it (a new run\'s '
                                  'folder replaces the old one): move it out of that folder, or give the run '
                                  'another name.')
    resume_state = (opt.get('path') or {}).get('resume_state')
    if is_train and resume_state and not auto_resume:
        own_states = os.path.join(folder, 'training_states')
        if os.path.realpath(os.path.dirname(os.path.expanduser(resume_state))) != os.path.realpath(own_states):
            raise OptionError(f'{where}: path.resume_state {resume_state} is not in this run\'s folder {own_states}: '
                              'BasicSR resumes the weights from the run\'s own models/ folder, so set name to the '
                              'run that saved the state (its experiments/<name>), or resume with --auto_resume.')


@contextlib.contextmanager
def _basicsr_logger_untouched():
    """BasicSR sets its logger up on the first get_root_logger() call, with the log file
    of that call: code run before the pipeline (a dataset's constructor) must not be it."""
    import logging

    from basicsr.utils import logger as basicsr_logger
    initialized = dict(basicsr_logger.initialized_logger)
    handlers = list(logging.getLogger('basicsr').handlers)
    try:
        yield
    finally:
        basicsr_logger.initialized_logger.clear()
        basicsr_logger.initialized_logger.update(initialized)
        logger = logging.getLogger('basicsr')
        for handler in logger.handlers[:]:
            if handler not in handlers:
                logger.removeHandler(handler)


def _dataset_options(opt, phase, dataset):
    """The dataset's options as BasicSR's parse_options completes them."""
    dataset_opt = copy.deepcopy(dataset)
    dataset_opt['phase'] = phase.split('_')[0]
    if 'scale' in opt:
        dataset_opt['scale'] = opt['scale']
    for key in ('dataroot_gt', 'dataroot_lq'):
        if dataset_opt.get(key) is not None:
            dataset_opt[key] = os.path.expanduser(dataset_opt[key])
    return dataset_opt


def _batch_per_process(opt, dataset):
    """The batch each training process draws, as BasicSR's dataloader builds it."""
    world_size = int(os.environ.get('WORLD_SIZE', 1)) if os.environ.get('RANK') is not None else 1
    if dataset.get('total_batch_size') is not None:
        return dataset['total_batch_size'] // world_size, world_size
    batch = dataset['batch_size_per_gpu']
    num_gpu = opt.get('num_gpu', 'auto')
    if world_size == 1 and num_gpu not in (None, 'auto') and num_gpu > 1:
        batch *= num_gpu  # one process with DataParallel
    return batch, world_size


def _check_datasets_build(opt, where, is_train):
    """Build each dataset as BasicSR will (its constructor's own checks, e.g. use_rot on
    PairedFlipDataset) and check that training gets at least one full batch."""
    import math

    from basicsr.utils.registry import DATASET_REGISTRY
    for phase, dataset in (opt.get('datasets') or {}).items():
        dataset_opt = _dataset_options(opt, phase, dataset)
        try:
            with _basicsr_logger_untouched():
                built = DATASET_REGISTRY.get(dataset_opt['type'])(dataset_opt)
        except Exception as err:  # noqa: BLE001 -- whatever BasicSR would stop on, said in one line
            raise OptionError(f'{where}: datasets.{phase} cannot be built ({first_line(err)}).') from None
        if not (is_train and phase == 'train'):
            continue
        ratio = dataset.get('dataset_enlarge_ratio', 1)
        batch, world_size = _batch_per_process(opt, dataset)
        samples = math.ceil(len(built) * ratio / world_size)
        if samples < batch:
            raise OptionError(f'{where}: datasets.train: a batch of {batch} is more than the {samples} training '
                              f'samples ({len(built)} pairs x dataset_enlarge_ratio {ratio}'
                              f'{f" / {world_size} processes" if world_size > 1 else ""}); BasicSR drops incomplete '
                              'batches, so it would train 0 iterations. Lower the batch size or raise '
                              'dataset_enlarge_ratio.')


def _check_weights_fit(opt, where):
    """``path.pretrain_network_<label>`` fits ``network_<label>``: compared key by key and
    shape by shape on a network built on the meta device (no memory, milliseconds), where
    BasicSR finds out after the folders, logs and datasets are made."""
    import torch
    from basicsr.utils.registry import ARCH_REGISTRY

    from basicsr_sgenet.integration.errors import InferenceError
    from basicsr_sgenet.integration.weights import describe_mismatch, read_state_dict
    paths = opt.get('path') or {}
    for key, path in paths.items():
        network_opt = opt.get(f'network_{key[len("pretrain_network_"):]}')
        if not (key.startswith('pretrain_network_') and path and isinstance(network_opt, dict)):
            continue
        label = key[len('pretrain_network_'):]
        kwargs = {name: value for name, value in network_opt.items() if name != 'type'}
        try:
            with torch.device('meta'):
                network_state = ARCH_REGISTRY.get(network_opt['type'])(**kwargs).state_dict()
        except Exception:  # noqa: BLE001 -- an arch that cannot build on meta: BasicSR's load checks it
            continue
        param_key = paths.get(f'param_key_{label}', 'params')
        try:
            file_state, _ = read_state_dict(os.path.expanduser(path), None if param_key in (None, 'params', 'params_ema')
                                            else param_key, prefer=param_key)
        except InferenceError as err:
            raise OptionError(f'{where}: path.{key}: {err}.') from None
        if paths.get(f'strict_load_{label}', True) is False:  # only shapes of the keys both have must agree
            shared = set(network_state) & set(file_state)
            network_state = {name: value for name, value in network_state.items() if name in shared}
            file_state = {name: value for name, value in file_state.items() if name in shared}
        mismatch = describe_mismatch(network_state, file_state)
        if mismatch:
            raise OptionError(f'{where}: path.{key}: {path} does not fit the {network_opt["type"]} built from '
                              f'network_{label}: {mismatch}.')


def check_run(opt, option_file, root, is_train, auto_resume=False):
    """What a train or test run needs beyond ``check_options``, all checked before BasicSR
    writes anything under ``root``: the keys BasicSR reads without a default, a run name
    that is one folder name, inputs outside the folder BasicSR archives, a resume state of
    this run, datasets that build (and give at least one training batch), pretrained
    weights that fit their network."""
    where = f'Option file {option_file}'
    _check_required_keys(opt, where, is_train)
    check_run_name(opt, where)
    check_run_folders(opt, option_file, root, is_train, auto_resume)
    _check_datasets_build(opt, where, is_train)
    _check_weights_fit(opt, where)
    return opt
