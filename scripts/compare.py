"""Compare finished experiments in one table (and plot): ``python scripts/compare.py results/A results/B``.

See basicsr_sgenet/tools/compare.py for the inputs it takes and what each column means."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.tools.compare import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
