"""Benchmark networks: ``python scripts/benchmark.py [--preset deblur] [--backends ...]``.

See basicsr_sgenet/tools/benchmark.py for what it measures and how."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.tools.benchmark import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
