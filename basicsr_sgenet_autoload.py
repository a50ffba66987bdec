"""Lets BasicSR's stock entry points (``basicsr/train.py``, ``python -m basicsr.train``,
``basicsr.test``) find this plugin's archs, losses and models.

The installed ``basicsr_sgenet_autoload.pth`` imports this module at interpreter start-up.
It costs nothing then: it only puts a finder on ``sys.meta_path`` that waits for the first
``import basicsr``. At that moment it imports ``basicsr_sgenet`` (which makes BasicSR
importable and registers SGENet), installs the plugin's patches
(``basicsr_sgenet.integration.patches.install``), and then lets BasicSR's own ``__init__`` run.

If the plugin cannot be loaded, BasicSR still loads (with a warning): a broken plugin
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
        # to run first: on torchvision >= 0.17 BasicSR's __init__ fails without its fix.
        try:
            importlib.import_module('basicsr_sgenet')  # makes BasicSR importable, registers the plugin
            importlib.import_module('basicsr_sgenet.integration.patches').install()
        except Exception as err:  # noqa: BLE001 -- any plugin failure must leave BasicSR usable
            warnings.warn(f'basicsr-sgenet could not be loaded ({type(err).__name__}: {err}); BasicSR runs '
                          'without SGENet. Set BASICSR_SGENET_AUTOLOAD=0 to silence this.', stacklevel=2)
        self._basicsr_loader.exec_module(module)


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
