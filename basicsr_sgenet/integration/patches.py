"""Everything basicsr-sgenet changes in BasicSR 1.4.2, in one place.

``make_basicsr_importable()`` is what ``import basicsr`` needs on today's stack; importing
``basicsr_sgenet`` runs it and nothing else from here. ``install()`` puts the run-time
patches below into BasicSR; the plugin's entry points call it with the option file's
settings, and the auto-load hook calls it for BasicSR's stock entry points. Each patch
names the upstream problem, and ``tests/test_patches.py`` shows that problem on BasicSR's
own function (kept in ``UPSTREAM``) and that the patch fixes it.

=============================================  ============================================
upstream problem (basicsr 1.4.2)               patch
=============================================  ============================================
``import basicsr``: torchvision >= 0.17         alias the old module name to the new one
renamed ``transforms.functional_tensor``
resume states mapped with ``storage.cuda()``:  map to the current CUDA device if any, else
no resume on a CPU-only machine                the CPU
``--auto_resume`` takes the newest ``*.state``  take the newest state that loads and whose
even if it or its weights are truncated        weights are complete (``resume.py``)
a kill during ``torch.save`` leaves a          write a temporary file, fsync, rename
truncated checkpoint under the final name
a failed checkpoint or state save (full        the first failed write stops the run with
disk) is retried, then "Just ignore it": the   one error line naming the file
run ends with status 0 and no checkpoint
``imwrite`` (validation/test images) writes    encode, write a temporary file, rename; a
in place: a full disk or Ctrl-C leaves a       failed write is one line naming the image
truncated PNG; its error names no file
a failed log write prints a logging            the run stops with one line naming the log
traceback and the run goes on without a log
``init_dist``: ``set_device(rank % 0)`` and    gloo and no device selection without CUDA;
nccl on a CPU-only machine; ``dist_params``    ``dist_params.backend`` / ``timeout_minutes``
ignored outside slurm, the timeout under       passed to ``install``, the timeout under
slurm too; workers spawned on CUDA only        every launcher; workers forked on Linux
data-loader workers restarted every epoch      ``persistent_workers`` on by default
DDP built with CUDA ``device_ids``             no device ids without CUDA
checkpoints load only from ``params[_ema]``    read every common wrapper; a checkpoint of
and a mismatch is a page of torch text         another network is one error naming keys
resuming with a longer schedule (a larger      the option file's schedule replaces the
``total_iter``) crashes in the scheduler       resumed one, with a warning
(``TypeError: list indices ... NoneType``)
no way to keep a recipe's batch when the       ``datasets.train.total_batch_size`` split
number of GPUs changes                         over the processes of the run
``python -m basicsr.train`` writes its         under the current directory instead, as the
folders inside site-packages                   plugin's entry points do
the stock scripts archive ``experiments/      the plugin's pre-flight (``options.check_run``)
<name>`` before any check (a ``name`` that is   runs on the parsed options first
a path renames an unrelated folder)
``ordered_yaml()`` (BasicSR's option file       a safe loader (``safe_yaml``): standard tags
reader) builds any Python object a tag names:  only, any other tag is one error line naming
``!!python/object/apply:os.system`` runs       the file and line; the stock scripts print
a command                                      the plugin's errors as one line, too
=============================================  ============================================
"""
import datetime
import functools
import importlib
import os
import sys
import types

from basicsr_sgenet.integration.errors import (CheckpointMismatchError, DependencyError, LaunchError, UserError, WriteError, print_uncaught_briefly)
from basicsr_sgenet.integration.atomic_files import atomic_write

# BasicSR's own functions that ``install`` replaced, by name: every install wraps these
# originals (so installing twice never wraps a wrapper), and the tests call them to show
# each upstream problem still exists.
UPSTREAM = {}

# What torch.distributed's env:// rendezvous reads; torchrun sets them for every rank.
TORCHRUN_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


# ----------------------------------------------------------------------------- import

def make_basicsr_importable():
    """Check torch/torchvision import together, then alias the torchvision module BasicSR needs."""
    try:
        import torch
    except ImportError as err:
        raise DependencyError(f'PyTorch is not importable ({err}). Install it first, e.g. '
                              '`pip install -c constraints.txt torch torchvision`.') from None
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError) as err:
        # Typical case: a CUDA torchvision wheel next to a CPU torch wheel fails with
        # "operator torchvision::nms does not exist".
        raise DependencyError(f'torchvision cannot be imported with torch {torch.__version__} ({err}). '
                              'Install a torch/torchvision pair built for each other, e.g. '
                              '`pip install -c constraints.txt torch torchvision`.') from None
    old_name = 'torchvision.transforms.functional_tensor'  # imported by basicsr/data/degradations.py
    if old_name not in sys.modules:
        try:
            importlib.import_module(old_name)
        except ModuleNotFoundError:
            sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')


# ----------------------------------------------------------------------------- resume

def _state_map_location():
    """BasicSR's choice (the current CUDA device) when there is one, else the CPU."""
    import torch
    if torch.cuda.is_available():
        device_id = torch.cuda.current_device()
        return lambda storage, loc: storage.cuda(device_id)
    return 'cpu'


def _resumed_networks(opt):
    """Labels (``g`` for ``network_g``) of the networks a resume reloads, as BasicSR's
    check_resume picks them: every ``network_*`` not in ``path.ignore_resume_networks``."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [key[len('network_'):] for key in opt if key.startswith('network_') and key not in ignored]


def load_resume_state(opt):
    """Replaces ``basicsr.train.load_resume_state``: see the table in the module docstring."""
    from basicsr.utils import check_resume

    from basicsr_sgenet.integration.resume import find_resumable_state, load_state_file

    if opt['auto_resume']:
        found = find_resumable_state(opt['path']['training_states'], opt['path']['models'], _resumed_networks(opt),
                                     _state_map_location())
        if found is None:
            return None
        state_path, resume_state = found
        opt['path']['resume_state'] = state_path
    elif opt['path'].get('resume_state'):
        resume_state = load_state_file(opt['path']['resume_state'], _state_map_location())
    else:
        return None
    check_resume(opt, resume_state['iter'])
    return resume_state


# Scheduler attributes that record progress rather than the schedule itself.
_SCHEDULER_PROGRESS = {'last_epoch', '_step_count', '_last_lr', '_get_lr_called_within_step', '_is_initial',
                       'base_lrs', 'verbose'}


def _schedule_settings(scheduler):
    return {key: value for key, value in vars(scheduler).items()
            if key not in _SCHEDULER_PROGRESS and key != 'optimizer'}


def _resume_with_option_file_schedule(resume_training):

    @functools.wraps(resume_training)
    def wrapper(self, resume_state):
        from basicsr.utils import get_root_logger
        configured = [_schedule_settings(scheduler) for scheduler in self.schedulers]
        resume_training(self, resume_state)
        for scheduler, settings in zip(self.schedulers, configured):
            resumed = _schedule_settings(scheduler)
            changed = sorted(key for key in settings if resumed.get(key) != settings[key])
            if changed:
                vars(scheduler).update(settings)
                get_root_logger().warning(
                    f'The option file\'s learning-rate schedule differs from the resumed run\'s '
                    f'({", ".join(f"{key}: {resumed.get(key)} -> {settings[key]}" for key in changed)}); '
                    f'training continues on the option file\'s schedule from iteration {resume_state["iter"]}.')

    return wrapper


# ----------------------------------------------------------------------------- checkpoints

class _KeepWriteError:
    """A file object that remembers the OSError of a failed write: torch.save reports a
    full disk as a RuntimeError of its zip writer ("unexpected pos ...")."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name):
        return getattr(self.file, name)


def atomic_torch_save(obj, f, *args, **kwargs):
    """``torch.save`` that never leaves a half-written file under the final name; a failed
    write (full disk, no permission) raises the OSError, whatever torch made of it."""
    import torch
    if not isinstance(f, (str, os.PathLike)):
        return torch.save(obj, f, *args, **kwargs)
    with atomic_write(f) as tmp:
        file = _KeepWriteError(tmp)
        try:
            torch.save(obj, file, *args, **kwargs)
        except Exception:
            if file.error is not None:
                raise file.error from None
            raise


class _FatalSave(BaseException):
    """Carries a WriteError through BasicSR's save retry loop, which catches every
    Exception, warns "Just ignore it" and lets the run end with status 0 and no checkpoint."""


def _save_or_stop(obj, f, *args, **kwargs):
    try:
        atomic_torch_save(obj, f, *args, **kwargs)
    except OSError as err:
        what = 'training state' if os.fspath(f).endswith('.state') else 'checkpoint'
        raise _FatalSave(WriteError.from_os_error(err, os.fspath(f), what)) from None


def _fatal_save(save):
    """``BaseModel.save_network`` / ``save_training_state`` whose failed write stops the run."""

    @functools.wraps(save)
    def wrapper(*args, **kwargs):
        try:
            return save(*args, **kwargs)
        except _FatalSave as fatal:
            raise fatal.args[0] from None

    return wrapper


class _TorchWithAtomicSave(types.ModuleType):
    """Stands in for ``torch`` inside ``basicsr.models.base_model`` only, whose
    ``save_network`` / ``save_training_state`` call ``torch.save(obj, final_path)``."""

    save = staticmethod(_save_or_stop)

    def __getattr__(self, name):
        import torch
        return getattr(torch, name)


def _load_any_checkpoint(load_network):

    @functools.wraps(load_network)
    def wrapper(self, net, load_path, strict=True, param_key='params'):
        from basicsr.utils import get_root_logger

        from basicsr_sgenet.integration.errors import InferenceError
        from basicsr_sgenet.integration.weights import describe_mismatch, read_state_dict

        net = self.get_bare_model(net)
        try:
            # BasicSR's default keys mean "whatever the file holds": params_ema, params, or
            # another project's wrapper (state_dict, model) or a bare state dict.
            state, key = read_state_dict(load_path, None if param_key in (None, 'params', 'params_ema') else param_key,
                                         prefer=param_key)
        except InferenceError as err:
            raise CheckpointMismatchError(f'{err} (path.pretrain_network_* or the weights of the iteration being '
                                          'resumed).') from None
        get_root_logger().info(f'Loading {type(net).__name__} model from {load_path}, with param key: [{key}].')
        mismatch = describe_mismatch(net.state_dict(), state)
        if mismatch and strict:
            raise CheckpointMismatchError(
                f'{load_path} does not fit the {type(net).__name__} built from the option file: {mismatch}. '
                'A resumed or pretrained network must be built with the same network_* options.')
        self._print_different_keys_loading(net, state, strict)
        net.load_state_dict(state, strict=strict)

    return wrapper


# ----------------------------------------------------------------------------- images and logs

def atomic_imwrite(img, file_path, params=None, auto_mkdir=True):
    """BasicSR's ``imwrite`` (validation and test images) through a temporary file: a full
    disk or a Ctrl-C never leaves a truncated PNG under its final name, and a failed write
    is a WriteError naming the image (BasicSR: "Failed in writing images.", no name)."""
    import cv2
    try:
        if auto_mkdir:
            os.makedirs(os.path.abspath(os.path.dirname(file_path)), exist_ok=True)
        ok, encoded = cv2.imencode(os.path.splitext(file_path)[1] or '.png', img, params or [])
        if not ok:
            raise IOError(f'Failed in encoding the image {file_path}.')
        with atomic_write(file_path, durable=False) as f:
            f.write(encoded.tobytes())
    except OSError as err:
        raise WriteError.from_os_error(err, getattr(err, 'filename', None) or file_path, 'image') from None


def _fatal_file_handler(file_handler_class):
    """logging.FileHandler whose failed writes stop the run: the standard one prints a
    "--- Logging error ---" traceback and goes on, so a full disk loses the log silently."""

    class FatalFileHandler(file_handler_class):

        def __init__(self, filename, *args, **kwargs):
            try:
                super().__init__(filename, *args, **kwargs)
            except OSError as err:
                raise WriteError.from_os_error(err, filename, 'log') from None

        failed = False

        def handleError(self, record):  # noqa: N802 -- logging's name
            err = sys.exc_info()[1]
            if isinstance(err, OSError) and not self.failed:
                self.failed = True
                raise WriteError.from_os_error(err, self.baseFilename, 'log') from None
            super().handleError(record)

        def close(self):
            try:
                super().close()  # flushes what is buffered: fails again after a failed write
            except OSError as err:
                if not self.failed:
                    self.failed = True
                    raise WriteError.from_os_error(err, self.baseFilename, 'log') from None

    return FatalFileHandler


class _LoggingWithFatalFileHandler(types.ModuleType):
    """Stands in for ``logging`` inside ``basicsr.utils.logger`` only, whose
    get_root_logger makes the run's log file with ``logging.FileHandler``."""

    def __init__(self, name):
        super().__init__(name)
        import logging
        self.FileHandler = _fatal_file_handler(logging.FileHandler)

    def __getattr__(self, name):
        import logging
        return getattr(logging, name)


def _install_imwrite():
    """Replace BasicSR's imwrite wherever a loaded BasicSR module imported it by name."""
    for name, module in list(sys.modules.items()):
        if (name == 'basicsr' or name.startswith('basicsr.')) and getattr(module, 'imwrite', None) is \
                UPSTREAM['imwrite']:
            module.imwrite = atomic_imwrite


# ----------------------------------------------------------------------------- distributed

def _init_dist_slurm(backend, port=None, **kwargs):
    """BasicSR's slurm set-up (one GPU per task, rank and world size from slurm, master
    address from ``scontrol``), passing ``kwargs`` (the timeout) to init_process_group."""
    import subprocess

    import torch
    import torch.distributed as dist
    proc_id, ntasks = int(os.environ['SLURM_PROCID']), int(os.environ['SLURM_NTASKS'])
    local_rank = proc_id % torch.cuda.device_count()
    torch.cuda.set_device(local_rank)
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')  # torch.distributed's default
    nodes = os.environ['SLURM_NODELIST']
    os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1')
    os.environ.update(WORLD_SIZE=str(ntasks), LOCAL_RANK=str(local_rank), RANK=str(proc_id))
    dist.init_process_group(backend=backend, **kwargs)


def _init_dist(launcher, backend=None, *, original, option_backend, timeout_minutes, **kwargs):
    """Replaces ``basicsr.utils.options.init_dist``: see the module docstring."""
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    kwargs.pop('timeout_minutes', None)  # BasicSR passes dist_params under slurm; install() has it
    port = kwargs.pop('port', None)
    if launcher == 'pytorch':
        missing = [name for name in TORCHRUN_ENV if not os.environ.get(name)]
        if missing:
            raise LaunchError(f'--launcher pytorch needs the environment torchrun sets up (missing: '
                              f'{", ".join(missing)}). Start training with `torchrun --nproc_per_node=N '
                              'basicsr_sgenet/train.py -opt ... --launcher pytorch`, or drop --launcher.')
    if timeout_minutes:
        # Rank 0 validates the whole set while the others wait in a collective: with
        # nccl's 10-minute default, a long validation kills the run.
        kwargs.setdefault('timeout', datetime.timedelta(minutes=timeout_minutes))
    backend = backend or option_backend
    if mp.get_start_method(allow_none=True) is None and sys.platform.startswith('linux'):
        # BasicSR's init_dist would pick 'spawn' (on the CUDA path only): every data-loader
        # worker then re-imports torch. Forked workers never touch CUDA, so fork is safe.
        mp.set_start_method('fork')
    if not torch.cuda.is_available():
        if backend == 'nccl':
            raise LaunchError('dist_params.backend is nccl, which needs CUDA GPUs, and this machine has none: '
                              'remove it (the backend then follows the hardware) or set gloo.')
        if launcher != 'pytorch':
            raise LaunchError(f'--launcher {launcher} assigns one CUDA GPU per process and this machine has none: '
                              'use torchrun with --launcher pytorch, which runs on CPUs with gloo.')
        dist.init_process_group(backend=backend or 'gloo', **kwargs)
        return
    if launcher == 'slurm':
        _init_dist_slurm(backend or 'nccl', port, **kwargs)
        return
    original(launcher, backend or 'nccl', **kwargs)


def _model_to_device_without_cuda(model_to_device):

    @functools.wraps(model_to_device)
    def wrapper(self, net):
        import torch
        from torch.nn.parallel import DistributedDataParallel
        if not (self.opt['dist'] and not torch.cuda.is_available()):
            return model_to_device(self, net)
        net = net.to(self.device)
        return DistributedDataParallel(net, find_unused_parameters=self.opt.get('find_unused_parameters', False))

    return wrapper


def split_total_batch_size(opt):
    """Set ``batch_size_per_gpu`` from ``total_batch_size`` for this run's process count."""
    from basicsr_sgenet.integration.batches import per_process_batch
    train = opt.get('datasets', {}).get('train')
    if not train or train.get('total_batch_size') is None:
        return
    # BasicSR's batch per step: batch_size_per_gpu per process under torchrun, and
    # batch_size_per_gpu x num_gpu in one process with DataParallel.
    processes = opt['world_size'] if opt['dist'] else 1
    gpus = 1 if opt['dist'] else max(opt['num_gpu'], 1)
    train['batch_size_per_gpu'] = per_process_batch(train, processes, gpus) // (1 if opt['dist'] else gpus)


def keep_loader_workers(opt):
    """Training loaders with workers keep them between epochs (BasicSR: new workers every
    epoch, each re-opening the LMDBs) unless ``persistent_workers`` is set."""
    train = opt.get('datasets', {}).get('train')
    if train and train.get('num_worker_per_gpu'):
        train.setdefault('persistent_workers', True)


def _split_total_batch_size_first(create_train_val_dataloader):

    @functools.wraps(create_train_val_dataloader)
    def wrapper(opt, logger):
        split_total_batch_size(opt)
        keep_loader_workers(opt)
        return create_train_val_dataloader(opt, logger)

    return wrapper


# ----------------------------------------------------------------------------- stock entry points

def _stock_script():
    """``__main__`` if it is BasicSR's own train.py or test.py, else None."""
    main = sys.modules.get('__main__')
    path = os.path.normpath(getattr(main, '__file__', None) or '')
    return main if path.split(os.sep)[-2:] in (['basicsr', 'train.py'], ['basicsr', 'test.py']) else None


class _PinnedRootOptions(dict):
    """Options whose ``root_path`` cannot be overwritten: BasicSR's stock train.py sets
    ``opt['root_path']`` to its own root right after parsing, for tb_logger/."""

    def __setitem__(self, key, value):
        if key != 'root_path' or 'root_path' not in self:
            super().__setitem__(key, value)


# basicsr/train.py functions replaced by ``install``: name -> make_replacement(original).
# BasicSR's stock train.py run as a script is a second copy of that module (``__main__``)
# whose train_pipeline uses its own globals; ``_parse_options_for_stock_scripts`` patches
# that copy too, on its first call.
TRAIN_FUNCTION_REPLACEMENTS = {'load_resume_state': lambda original: load_resume_state,
                               'create_train_val_dataloader': _split_total_batch_size_first}


def _parse_options_for_stock_scripts(parse_options):

    @functools.wraps(parse_options)
    def wrapper(root_path, is_train=True):
        script = _stock_script()
        if script is None:
            return parse_options(root_path, is_train)
        # The stock scripts call BasicSR's pipeline directly: the plugin's errors (an option
        # file's tag, a checkpoint that does not fit) reach the top level as one line.
        print_uncaught_briefly(UserError)
        try:
            return _parse_stock_options(script, parse_options, root_path, is_train)
        except UserError as err:
            print(f'error: {err}', file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper


def _parse_stock_options(script, parse_options, root_path, is_train):
    """BasicSR's parse_options for its stock script: the script's train functions patched,
    and the current directory as root when BasicSR is installed in site-packages."""
    for name, make_replacement in TRAIN_FUNCTION_REPLACEMENTS.items():
        if hasattr(script, name) and not getattr(getattr(script, name), '_sgenet_patch', False):
            replacement = make_replacement(getattr(script, name))
            replacement._sgenet_patch = True
            setattr(script, name, replacement)
    if os.path.basename(os.path.normpath(root_path)) not in ('site-packages', 'dist-packages'):
        opt, args = parse_options(root_path, is_train)  # a BasicSR checkout: its root, as BasicSR intends
        return _checked_before_writing(opt, args, root_path, is_train), args
    root = os.getcwd()
    print(f'basicsr-sgenet: BasicSR is installed in {root_path}; writing experiments/, results/ and tb_logger/ '
          f'under the current directory {root} instead.', flush=True)
    opt, args = parse_options(root, is_train)
    opt = _PinnedRootOptions(_checked_before_writing(opt, args, root, is_train))
    opt['root_path'] = root
    return opt, args


def _checked_before_writing(opt, args, root, is_train):
    """The plugin's pre-flight (integration/options.py) on the options BasicSR parsed, for
    the stock scripts: after parsing, before BasicSR creates or archives any folder."""
    from basicsr_sgenet.integration import options
    from basicsr_sgenet.integration.option_keys import warn_unknown_keys
    warn_unknown_keys(opt, args.opt, lambda line: print(line, file=sys.stderr, flush=True))
    options.check_run(opt, args.opt, root, is_train, auto_resume=args.auto_resume)
    return opt


# ----------------------------------------------------------------------------- option files

def _safe_ordered_yaml(ordered_yaml):
    """BasicSR's ``ordered_yaml()`` with the safe loader: (OrderedSafeLoader, BasicSR's dumper)."""

    @functools.wraps(ordered_yaml)
    def wrapper():
        from basicsr_sgenet.integration.safe_yaml import OrderedSafeLoader
        return OrderedSafeLoader, ordered_yaml()[1]

    return wrapper


# ----------------------------------------------------------------------------- install

def _remember_upstream():
    import basicsr.models.base_model as base_model_module
    import basicsr.train
    import basicsr.utils.img_util
    import basicsr.utils.logger
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    if not UPSTREAM:
        UPSTREAM.update(
            load_resume_state=basicsr.train.load_resume_state,
            create_train_val_dataloader=basicsr.train.create_train_val_dataloader,
            init_dist=basicsr.utils.options.init_dist, parse_options=basicsr.utils.options.parse_options,
            ordered_yaml=basicsr.utils.options.ordered_yaml,
            model_to_device=BaseModel.model_to_device, load_network=BaseModel.load_network,
            resume_training=BaseModel.resume_training, base_model_torch=base_model_module.torch,
            save_network=BaseModel.save_network, save_training_state=BaseModel.save_training_state,
            imwrite=basicsr.utils.img_util.imwrite, logger_logging=basicsr.utils.logger.logging)


def install(dist_backend=None, dist_timeout_minutes=None):
    """Install every run-time patch into BasicSR, over BasicSR's originals.

    Args:
        dist_backend (str | None): the option file's ``dist_params.backend``; None: nccl
            with CUDA, gloo without.
        dist_timeout_minutes (float | None): the option file's
            ``dist_params.timeout_minutes`` for torchrun's collectives; None: torch's default.

    Calling it again re-installs everything with the new arguments.
    """
    import basicsr.models.base_model as base_model_module
    import basicsr.train
    import basicsr.utils.logger
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    _remember_upstream()
    for name, make_replacement in TRAIN_FUNCTION_REPLACEMENTS.items():
        setattr(basicsr.train, name, make_replacement(UPSTREAM[name]))
    basicsr.utils.options.init_dist = functools.partial(
        _init_dist, original=UPSTREAM['init_dist'], option_backend=dist_backend, timeout_minutes=dist_timeout_minutes)
    basicsr.utils.options.parse_options = _parse_options_for_stock_scripts(UPSTREAM['parse_options'])
    # parse_options (every copy: basicsr.train imported it by name) looks ordered_yaml up here.
    basicsr.utils.options.ordered_yaml = _safe_ordered_yaml(UPSTREAM['ordered_yaml'])
    BaseModel.model_to_device = _model_to_device_without_cuda(UPSTREAM['model_to_device'])
    BaseModel.load_network = _load_any_checkpoint(UPSTREAM['load_network'])
    BaseModel.resume_training = _resume_with_option_file_schedule(UPSTREAM['resume_training'])
    base_model_module.torch = _TorchWithAtomicSave('torch')
    BaseModel.save_network = _fatal_save(UPSTREAM['save_network'])
    BaseModel.save_training_state = _fatal_save(UPSTREAM['save_training_state'])
    _install_imwrite()
    basicsr.utils.logger.logging = _LoggingWithFatalFileHandler('logging')
