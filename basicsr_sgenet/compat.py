"""Makes basicsr 1.4.2 (the registry's latest) work on today's PyTorch stack.

Every fix here names the upstream problem it works around and is covered by a test in
``tests/test_compat.py`` that shows the problem on the unpatched function. On a machine
with CUDA, BasicSR's own code runs for distributed set-up and DDP; resume states map to
the current CUDA device as BasicSR's do, chosen by our own loader (see load_resume_state).

``apply()`` is idempotent. ``basicsr_sgenet/__init__.py`` calls it before anything imports
``basicsr``; the auto-load hook (``basicsr_sgenet_autoload.py``) imports the package for
BasicSR's stock entry points.
"""
import datetime
import functools
import os
import sys
import types

# The fix for the renamed torchvision module lives in the auto-load hook, which must be
# able to apply it without this package; re-exported here with the other fixes.
from basicsr_sgenet_autoload import alias_functional_tensor  # noqa: F401
from basicsr_sgenet.errors import DependencyError, LaunchError

_applied = False

# BasicSR's own functions that ``patch_basicsr`` replaced, by name: the tests call them to
# show each upstream problem still exists (so each fix is still needed).
UPSTREAM = {}

# What torch.distributed's env:// rendezvous reads; torchrun sets them for every rank.
TORCHRUN_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def check_torch_stack():
    """Import torch and torchvision, turning a broken install into one clear sentence."""
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
    return torch


def _state_map_location():
    """Where resumed training states go: BasicSR's choice (the current CUDA device) when
    there is one, else the CPU."""
    import torch
    if torch.cuda.is_available():
        device_id = torch.cuda.current_device()
        return lambda storage, loc: storage.cuda(device_id)
    return 'cpu'


def _resumed_networks(opt):
    """Labels of the networks a resume reloads (``g`` for ``network_g``), as check_resume
    picks them: every ``network_*`` not in ``path.ignore_resume_networks``."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [key[len('network_'):] for key in opt if key.startswith('network_') and key not in ignored]


def load_resume_state(opt):
    """Replacement for ``basicsr.train.load_resume_state``.

    Upstream maps every tensor with ``storage.cuda(torch.cuda.current_device())``, so a
    CPU-only machine cannot resume at all, and auto-resume picks the newest ``*.state``
    even when it is half-written (a run killed while saving). Here: states go to the CUDA
    device when there is one, else the CPU; auto-resume takes the newest state that loads
    and whose network weights exist, warning about each one it skips. States load with an
    explicit ``weights_only=True`` (torch >= 2.6's default; BasicSR's optimizer and
    scheduler states, ``Counter`` milestones included, pass it on torch 2.14).
    """
    from basicsr.utils import check_resume

    from basicsr_sgenet.resume import find_resumable_state, load_state_file

    if opt['auto_resume']:
        found = find_resumable_state(opt['path']['training_states'], opt['path']['models'], _resumed_networks(opt),
                                     _state_map_location())
        if found is None:
            return None
        state_path, resume_state = found
        opt['path']['resume_state'] = state_path
    elif opt['path'].get('resume_state'):
        state_path = opt['path']['resume_state']
        resume_state = load_state_file(state_path, _state_map_location())
    else:
        return None
    check_resume(opt, resume_state['iter'])
    return resume_state


# The option file's ``dist_params.backend`` and ``dist_params.timeout_minutes``, which
# BasicSR's parse_options passes on only for slurm; the entry points set them before
# handing over (see cli.py).
requested_dist_backend = None
requested_dist_timeout_minutes = None


def init_dist(launcher, backend=None, **kwargs):
    """Replacement for ``basicsr.utils.options.init_dist``.

    Upstream always calls ``torch.cuda.set_device(rank % torch.cuda.device_count())``, a
    ZeroDivisionError on a CPU-only machine, and uses nccl, which needs GPUs. The backend
    now follows the hardware (nccl with CUDA, gloo without) unless the option file names
    one; with CUDA it hands over to BasicSR. ``--launcher pytorch`` outside torchrun gets a
    clear error instead of ``KeyError: 'RANK'``.
    """
    import torch
    import torch.distributed as dist

    from basicsr.utils import dist_util

    if launcher == 'pytorch':
        missing = [name for name in TORCHRUN_ENV if not os.environ.get(name)]
        if missing:
            raise LaunchError(f'--launcher pytorch needs the environment torchrun sets up (missing: '
                               f'{", ".join(missing)}). Start training with `torchrun --nproc_per_node=N '
                               'basicsr_sgenet/train.py -opt ... --launcher pytorch`, or drop --launcher.')
    backend = backend or requested_dist_backend
    if requested_dist_timeout_minutes and launcher == 'pytorch':
        # Rank 0 validates the whole set while the others wait in a collective: with
        # nccl's 10-minute default, a long validation kills the run.
        kwargs.setdefault('timeout', datetime.timedelta(minutes=requested_dist_timeout_minutes))
    if not torch.cuda.is_available():
        if backend == 'nccl':
            raise LaunchError('dist_params.backend is nccl, which needs CUDA GPUs, and this machine has none: '
                               'remove it (the backend then follows the hardware) or set gloo.')
        if launcher != 'pytorch':
            raise LaunchError(f'--launcher {launcher} assigns one CUDA GPU per process and this machine has none: '
                              'use torchrun with --launcher pytorch, which runs on CPUs with gloo.')
        dist.init_process_group(backend=backend or 'gloo', **kwargs)
        return
    dist_util.init_dist(launcher, backend or 'nccl', **kwargs)


def _model_to_device_without_cuda(original):
    """Wraps ``BaseModel.model_to_device``: upstream builds DistributedDataParallel with
    ``device_ids=[torch.cuda.current_device()]``, which fails without CUDA. CPU DDP (gloo)
    takes no device ids."""

    @functools.wraps(original)
    def model_to_device(self, net):
        import torch
        from torch.nn.parallel import DistributedDataParallel
        if not (self.opt['dist'] and not torch.cuda.is_available()):
            return original(self, net)
        net = net.to(self.device)
        return DistributedDataParallel(net, find_unused_parameters=self.opt.get('find_unused_parameters', False))

    return model_to_device


def atomic_torch_save(obj, f, *args, **kwargs):
    """``torch.save`` that never leaves a half-written file under the final name: write a
    temporary file beside it, flush it to disk, then rename (atomic on POSIX and Windows)."""
    import torch
    if not isinstance(f, (str, os.PathLike)):
        return torch.save(obj, f, *args, **kwargs)
    tmp_path = f'{os.fspath(f)}.tmp-{os.getpid()}'
    try:
        with open(tmp_path, 'wb') as tmp:
            torch.save(obj, tmp, *args, **kwargs)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_path, f)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


class _TorchWithAtomicSave(types.ModuleType):
    """Stands in for ``torch`` inside ``basicsr.models.base_model`` only. Upstream's
    ``save_network`` / ``save_training_state`` call ``torch.save(obj, final_path)``, so a run
    killed mid-write leaves a truncated newest checkpoint that auto-resume then picks."""

    save = staticmethod(atomic_torch_save)

    def __getattr__(self, name):
        import torch
        return getattr(torch, name)


# basicsr/train.py functions replaced by this plugin: name -> make_replacement(original).
# Stock entry points (``python basicsr/train.py``, ``python -m basicsr.train``) run that
# file as ``__main__``, a second copy whose own globals its train_pipeline uses; the
# replacements reach that copy when it calls parse_options (see _reach_stock_train_script).
_TRAIN_FUNCTION_REPLACEMENTS = {}


def replace_train_function(name, make_replacement):
    """Replace ``basicsr.train.<name>`` here and in BasicSR's train.py run as a script."""
    import basicsr.train
    setattr(basicsr.train, name, make_replacement(getattr(basicsr.train, name)))
    _TRAIN_FUNCTION_REPLACEMENTS[name] = make_replacement


def _stock_train_script():
    """``__main__`` if it is BasicSR's own train.py, else None."""
    main = sys.modules.get('__main__')
    path = os.path.normpath(getattr(main, '__file__', None) or '')
    return main if path.split(os.sep)[-2:] == ['basicsr', 'train.py'] else None


def _reach_stock_train_script(parse_options):

    @functools.wraps(parse_options)
    def wrapper(*args, **kwargs):
        script = _stock_train_script()
        if script is not None and not getattr(script, '_sgenet_patched', False):
            for name, make_replacement in _TRAIN_FUNCTION_REPLACEMENTS.items():
                setattr(script, name, make_replacement(getattr(script, name)))
            script._sgenet_patched = True
        return parse_options(*args, **kwargs)

    return wrapper


def patch_basicsr():
    """Install the replacements into the imported BasicSR modules."""
    import basicsr.train
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    if UPSTREAM:
        return
    import basicsr.models.base_model as base_model_module

    upstream = dict(load_resume_state=basicsr.train.load_resume_state, init_dist=basicsr.utils.options.init_dist,
                    model_to_device=BaseModel.model_to_device, base_model_torch=base_model_module.torch)
    replace_train_function('load_resume_state', lambda original: load_resume_state)
    basicsr.utils.options.init_dist = init_dist
    basicsr.utils.options.parse_options = _reach_stock_train_script(basicsr.utils.options.parse_options)
    BaseModel.model_to_device = _model_to_device_without_cuda(BaseModel.model_to_device)
    base_model_module.torch = _TorchWithAtomicSave('torch')
    UPSTREAM.update(upstream)


def apply():
    """Check the stack, then make ``import basicsr`` and its pipelines work on it."""
    global _applied
    if _applied:
        return
    check_torch_stack()
    alias_functional_tensor()
    try:
        import basicsr  # noqa: F401
    except ImportError as err:
        raise DependencyError(f'basicsr cannot be imported ({err}). Install it with '
                              '`pip install -c constraints.txt -e .` from the basicsr-sgenet checkout.') from None
    patch_basicsr()
    _applied = True
