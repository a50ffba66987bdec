"""BasicSR's plugin convention: every ``*_arch.py`` / ``*_model.py`` / ... module in a
package is imported when the package is, so its ``@REGISTRY.register()`` decorators run."""
import importlib
import os


def import_modules_with_suffix(package_name, package_dir, suffix):
    """Import ``package_name.<stem>`` for each ``<stem>{suffix}.py`` file in ``package_dir``.

    Sorted, so registration order (and any duplicate-name error) is the same on every machine.
    """
    stems = sorted(name[:-3] for name in os.listdir(package_dir) if name.endswith(f'{suffix}.py'))
    return [importlib.import_module(f'{package_name}.{stem}') for stem in stems]
