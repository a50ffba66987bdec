"""Run a study: every variant x seed of a study file through BasicSR's trainer, then one
table (PSNR/SSIM mean ± std over seeds, params, MACs, train time) and one plot of
validation PSNR against iterations.

    python scripts/study.py options/studies/ablation_mini.yml             # ~1 hour on 2 CPU cores
    python scripts/study.py options/studies/ablation_mini.yml --quick     # smoke test, seconds per variant
    python scripts/study.py options/studies/ablation_mini.yml --variants full no_cem

Stop it any time and run the same command again: finished runs are skipped and the
interrupted one resumes from its last checkpoint. Results: <out>/results.md and
<out>/val_psnr.png (default out: studies/<name>, or studies/<name>_quick).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_sgenet.integration.errors import Interrupted, exit_on_user_error  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('study', help='study file, e.g. options/studies/ablation_mini.yml')
    parser.add_argument('--out', help='output folder (default studies/<name>, studies/<name>_quick with --quick)')
    parser.add_argument('--quick', action='store_true',
                        help='smoke test: tiny synthetic data, 2 iterations, first seed, every variant')
    parser.add_argument('--variants', nargs='+', help='run only these variants (the report covers all)')
    parser.add_argument('--threads', type=int, help='torch threads per training run (default: torch\'s choice)')
    return parser.parse_args(argv)


def run(args):
    from basicsr_sgenet.tools.study import StudyRunner, quick_study, read_study

    study = read_study(args.study)
    if args.quick:
        study = quick_study(study)
    output = args.out or os.path.join('studies', study.name)
    runner = StudyRunner(study, output, variants=args.variants, threads=args.threads,
                         log=lambda line: print(line, flush=True))
    try:
        runner.run()
    except KeyboardInterrupt:
        raise Interrupted(f'finished runs are kept in {output} and the interrupted one resumes from its last '
                          'checkpoint: run the same command again to continue') from None


def main(argv=None):
    exit_on_user_error(run, parse_args(argv))


if __name__ == '__main__':
    main()
