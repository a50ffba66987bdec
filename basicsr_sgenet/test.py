"""Test with BasicSR's test pipeline and this plugin registered.

    python basicsr_sgenet/test.py -opt options/test_SGENet_GoPro.yml
    python -m basicsr_sgenet.test -opt ...
    sgenet-test -opt ...

All of BasicSR's test flags work unchanged; outputs land under the current directory.
"""
import os
import sys

if __name__ == '__main__' and not __package__:
    # Run as a file: put the repository root on sys.path instead of this package's folder,
    # whose module names (data, models, test, ...) would shadow top-level ones.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from basicsr_sgenet.integration.pipeline import run_pipeline  # noqa: E402


def main(argv=None):
    run_pipeline('test', argv)


if __name__ == '__main__':
    main()
