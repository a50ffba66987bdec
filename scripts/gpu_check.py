"""The prepared GPU check: ``python scripts/gpu_check.py --out gpu_check.md`` (one GPU, at
most 8 minutes); ``--device cpu --quick`` runs the same steps tiny on a CPU.

See basicsr_sgenet/tools/gpu_check.py for what it measures and how."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.tools.gpu_check import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
