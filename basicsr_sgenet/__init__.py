"""basicsr-sgenet: SGENet (Spatially Guided Enhancement Network) as a BasicSR plugin.

Importing this package registers the plugin's archs, losses, models, datasets and
metrics in BasicSR's registries, after making ``import basicsr`` work on today's PyTorch
stack. Nothing else changes in BasicSR until ``basicsr_sgenet.integration.patches.install()`` runs
(the plugin's train/test entry points and the auto-load hook call it).
"""
from basicsr_sgenet.integration.errors import DependencyError, print_uncaught_briefly
from basicsr_sgenet.integration.patches import make_basicsr_importable

try:
    # First: if registering below ever fails, BasicSR itself stays importable.
    make_basicsr_importable()
except DependencyError:
    # A broken install is not a bug to debug: if nothing catches this, print the one
    # sentence that says what to install, not a traceback through the import system.
    print_uncaught_briefly(DependencyError)
    raise

from basicsr_sgenet import archs, data, losses, metrics, models  # noqa: E402,F401  (registers)

__version__ = '0.2.0'
