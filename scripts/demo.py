"""The SGENet demo: ``python scripts/demo.py [--quick] [--iters N] [--workspace DIR]``.

See basicsr_sgenet/demo.py for what it does and writes."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.demo import main  # noqa: E402

if __name__ == '__main__':
    main()
