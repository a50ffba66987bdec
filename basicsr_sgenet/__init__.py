"""basicsr-sgenet: SGENet (Spatially Guided Enhancement Network) as a BasicSR plugin.

Importing this package makes BasicSR importable on today's PyTorch stack (see
``compat.py``) and registers the plugin's archs, losses, models, datasets and metrics.
"""
from basicsr_sgenet import compat
from basicsr_sgenet.errors import DependencyError, print_uncaught_briefly

try:
    compat.apply()
except DependencyError:
    # A broken install is not a bug to debug: if nothing catches this, print the one
    # sentence that says what to install, not a traceback through the import system.
    print_uncaught_briefly(DependencyError)
    raise

from basicsr_sgenet import archs, data, losses, metrics, models, pipeline_checks  # noqa: E402,F401  (registers)

pipeline_checks.install()

__version__ = '0.1.0'
