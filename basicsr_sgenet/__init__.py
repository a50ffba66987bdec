"""basicsr-sgenet: SGENet (Spatially Guided Enhancement Network) as a BasicSR plugin.

Importing this package makes BasicSR importable on today's PyTorch stack (see
``compat.py``) and registers the plugin's archs, losses, models, datasets and metrics.
"""
from basicsr_sgenet import compat

compat.apply()

from basicsr_sgenet import archs, data, losses, metrics, models  # noqa: E402,F401  (registers)

__version__ = '0.1.0'
