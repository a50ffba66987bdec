"""Lets BasicSR's stock entry points (``basicsr/train.py``, ``python -m basicsr.train``,
``basicsr.test``) find this plugin's archs, losses and models.

The installed ``basicsr_sgenet_autoload.pth`` imports this module at interpreter start-up.
It costs nothing then: it only puts a finder on ``sys.meta_path`` that waits for the first
``import basicsr``. At that moment it imports ``basicsr_sgenet`` (which applies the compat
fixes and registers SGENet) and then lets BasicSR's own ``__init__`` run.

Set ``BASICSR_SGENET_AUTOLOAD=0`` to switch it off.
"""
import importlib
import importlib.abc
import os
import sys


class _RegisterPluginFirst(importlib.abc.Loader):
    """Wraps BasicSR's package loader: plugin first, then BasicSR's ``__init__``."""

    def __init__(self, basicsr_loader):
        self._basicsr_loader = basicsr_loader

    def create_module(self, spec):
        return self._basicsr_loader.create_module(spec)

    def exec_module(self, module):
        # BasicSR's submodules import fine before its __init__ has run, and the plugin has
        # to run first: on torchvision >= 0.17 BasicSR's __init__ fails without compat.
        importlib.import_module('basicsr_sgenet')
        self._basicsr_loader.exec_module(module)


class BasicSRImportHook(importlib.abc.MetaPathFinder):

    def find_spec(self, fullname, path, target=None):
        if fullname != 'basicsr':
            return None
        uninstall()  # one shot; also keeps the lookup below from finding this hook again
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(fullname, path)
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
