"""Lets BasicSR's stock entry points (``basicsr/train.py``, ``python -m basicsr.train``,
``basicsr.test``) find this plugin's archs, losses and models.

The installed ``basicsr_sgenet_autoload.pth`` imports this module at interpreter start-up.
It costs nothing then: it only puts a finder on ``sys.meta_path`` that waits for the first
``import basicsr``. At that moment it imports ``basicsr_sgenet`` (which applies the compat
fixes and registers SGENet) and then lets BasicSR's own ``__init__`` run.

If the plugin cannot be imported, BasicSR still loads (with a warning): a broken plugin
must not take down every other BasicSR user in the environment.

Set ``BASICSR_SGENET_AUTOLOAD=0`` to switch it off.
"""
import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings


class _RegisterPluginFirst(importlib.abc.Loader):
    """Wraps BasicSR's package loader: plugin first, then BasicSR's ``__init__``."""

    def __init__(self, basicsr_loader):
        self._basicsr_loader = basicsr_loader

    def __getattr__(self, name):
        # Everything else (resource readers, get_data, ...) is BasicSR's loader's business.
        return getattr(self._basicsr_loader, name)

    def create_module(self, spec):
        return self._basicsr_loader.create_module(spec)

    def exec_module(self, module):
        uninstall()
        # BasicSR's submodules import fine before its __init__ has run, and the plugin has
        # to run first: on torchvision >= 0.17 BasicSR's __init__ fails without compat.
        try:
            importlib.import_module('basicsr_sgenet')
        except Exception as err:  # noqa: BLE001 -- any plugin failure must leave BasicSR usable
            warnings.warn(f'basicsr-sgenet could not be loaded ({type(err).__name__}: {err}); BasicSR runs '
                          'without SGENet. Set BASICSR_SGENET_AUTOLOAD=0 to silence this.', stacklevel=2)
            try:
                alias_functional_tensor()  # all BasicSR needs to import at all
            except Exception:  # noqa: BLE001 -- then BasicSR reports its own import error
                pass
        self._basicsr_loader.exec_module(module)


def alias_functional_tensor():
    """basicsr/data/degradations.py imports ``torchvision.transforms.functional_tensor``,
    which torchvision 0.17 renamed to ``_functional_tensor``: ``import basicsr`` fails.
    Register the old name as an alias of the new module. (Lives here, not in
    basicsr_sgenet.compat, so the hook can apply it even when the plugin fails to import.)"""
    old_name = 'torchvision.transforms.functional_tensor'
    if old_name in sys.modules:
        return
    try:
        importlib.import_module(old_name)
    except ModuleNotFoundError:
        sys.modules[old_name] = importlib.import_module('torchvision.transforms._functional_tensor')


class BasicSRImportHook(importlib.abc.MetaPathFinder):
    _looking_up = False

    def find_spec(self, fullname, path, target=None):
        if fullname != 'basicsr' or BasicSRImportHook._looking_up:
            return None
        # Ask every other finder (site-packages, editable-install finders, ...) where
        # BasicSR is; the flag keeps this lookup from coming back here.
        BasicSRImportHook._looking_up = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            BasicSRImportHook._looking_up = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisterPluginFirst(spec.loader)
        return spec


def install():
    if os.environ.get('BASICSR_SGENET_AUTOLOAD', '1') == '0' or 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, BasicSRImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicSRImportHook())


def uninstall():
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, BasicSRImportHook)]
