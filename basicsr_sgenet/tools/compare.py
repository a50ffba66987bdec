"""One table (and plot) comparing finished experiments: scores, size, cost, speed.

    python scripts/compare.py results/SGENet_GoPro results/SGENet_small_GoPro
    python scripts/compare.py experiments/SGENet_GoPro --pick best
    python scripts/compare.py options/test_SGENet_GoPro.yml options/test_SGENet_HIDE.yml \\
        --latency --device cuda --size 720x1280 --out compare.md --plot compare.png

Inputs (any mix):

* a BasicSR folder: ``results/<name>/`` (test logs) or ``experiments/<name>/`` (train
  logs with validation lines). Every ``*.log`` in it is read, oldest first; the network
  comes from an option file copied into the folder (training does that) or else from
  the options printed at the top of the log.
* a test/train option file: its ``network_g``, and the logs of ``results/<name>/`` or
  ``experiments/<name>/`` under ``--root`` (default: the current folder), ``name``
  being the option file's ``name``.

Each (experiment, dataset) pair is one row with every metric the logs hold (columns
named as in the option file's ``val.metrics``, e.g. psnr, ssim, psnr_matlab), the
validation it came from, parameters, MACs at ``--size`` (counted on the meta device:
no compute) and, with ``--latency``, the median synchronised latency of one forward
pass at ``--size`` (see ``basicsr_sgenet/tools/benchmark.py`` for what that measures).

Run it as ``python scripts/compare.py`` or ``python -m basicsr_sgenet.tools.compare``.
"""
import argparse
import glob
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional

from basicsr_sgenet.tools.experiment_logs import (
    ParsedLog, best_validations, find_logs, latest_validations, parse_log_file)
from basicsr_sgenet.integration.errors import InferenceError, OptionError, first_line, status_or_user_error
from basicsr_sgenet.integration.options import read_option_file
from basicsr_sgenet.inference.network import NetworkSpec, build_network, spec_from_option_file
from basicsr_sgenet.integration.own_outputs import check_report_paths, write_report
from basicsr_sgenet.tools.plotting import labelled_scatter
from basicsr_sgenet.inference.runtime import resolve_device
from basicsr_sgenet.tools.profiling import (
    build_on_meta, count_macs, count_parameters, format_gmacs, measure_latency, parse_size)


@dataclass
class Experiment:
    name: str
    folder: str
    logs: list
    network: Optional[object] = None  # NetworkSpec
    validations: Dict[str, object] = field(default_factory=dict)  # dataset -> Validation
    params: Optional[int] = None
    macs: Optional[int] = None
    latency_ms: Optional[float] = None
    cost_note: str = ''


def _spec_from_options(options, source):
    network = dict((options or {}).get('network_g') or {})
    arch = network.pop('type', None)
    return NetworkSpec(arch=arch, kwargs=network, source=source) if arch else None


def _copied_option_file(folder):
    files = sorted(glob.glob(os.path.join(folder, '*.yml')))
    return files[-1] if files else None


def load_experiment(path, root, pick, best_by):
    """Experiment from a results/experiments folder or an option file."""
    if os.path.isdir(path):
        folder, name, spec = path, os.path.basename(os.path.normpath(path)), None
        option_file = _copied_option_file(folder)
        if option_file:
            spec = spec_from_option_file(option_file)
    elif os.path.isfile(path) and path.endswith(('.yml', '.yaml')):
        try:
            name = read_option_file(path).get('name')
        except OptionError as err:
            raise InferenceError(str(err)) from None
        if not name:
            raise InferenceError(f'Option file {path} has no "name"; cannot find its results')
        spec = spec_from_option_file(path)
        candidates = [os.path.join(root, top, name) for top in ('results', 'experiments')]
        folder = next((c for c in candidates if find_logs(c)), candidates[0])
    else:
        raise InferenceError(f'{path} is neither a results/experiments folder nor an option file (.yml)')

    merged = ParsedLog(folder)
    logs = find_logs(folder)
    for log in logs:
        parsed = parse_log_file(log)
        merged.validations += parsed.validations
        merged.options = parsed.options or merged.options
    if spec is None:
        spec = _spec_from_options(merged.options, logs[-1] if logs else folder)
    validations = best_validations(merged, best_by) if pick == 'best' else latest_validations(merged)
    return Experiment(name=name, folder=folder, logs=logs, network=spec, validations=validations)


def add_costs(experiment, size, args):
    if experiment.network is None:
        experiment.cost_note = 'network unknown'
        return
    try:
        meta_network = build_on_meta(experiment.network)
        experiment.params = count_parameters(meta_network)
        experiment.macs, _ = count_macs(experiment.network, *size, network=meta_network)
        if args.latency:
            timing = measure_latency(build_network(experiment.network), resolve_device(args.device), *size,
                                     precision=args.precision, warmup=args.warmup, repeats=args.repeats)
            experiment.latency_ms = timing.median_ms
    except InferenceError as err:
        experiment.cost_note = str(err)
    except RuntimeError as err:
        experiment.cost_note = f'failed: {first_line(err)}'


def metric_columns(experiments):
    names = []
    for experiment in experiments:
        for validation in experiment.validations.values():
            names += [name for name in validation.metrics if name not in names]
    return names


def markdown_table(experiments, size, args):
    metrics = metric_columns(experiments)
    size_text = f'{size[0]}x{size[1]}'
    columns = (['Experiment', 'Dataset'] + metrics +
               ['Validation', 'Params (M)', f'GMACs @{size_text}', f'Latency @{size_text} (ms)'])
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]

    def cost_cells(experiment):
        params = '–' if experiment.params is None else f'{experiment.params / 1e6:.2f}'
        macs = '–' if experiment.macs is None else format_gmacs(experiment.macs)
        latency = '–' if experiment.latency_ms is None else f'{experiment.latency_ms:.1f}'
        return [params, macs, latency]

    for experiment in experiments:
        if not experiment.validations:
            lines.append('| ' + ' | '.join([experiment.name, '(no validation results found)'] + ['–'] * len(metrics) +
                                          ['–'] + cost_cells(experiment)) + ' |')
            continue
        for dataset, validation in experiment.validations.items():
            values = [f'{validation.metrics[m]:.4f}' if m in validation.metrics else '–' for m in metrics]
            where = os.path.basename(experiment.logs[-1]) if experiment.logs else '–'
            if validation.iteration is not None:
                where = f'iter {validation.iteration}'
            lines.append('| ' + ' | '.join([experiment.name, dataset] + values + [where] + cost_cells(experiment)) +
                         ' |')
    notes = [f'- {e.name}: no validation results in {e.folder} ({len(e.logs)} log file(s))'
             for e in experiments if not e.validations]
    notes += [f'- {e.name}: {e.cost_note}' for e in experiments if e.cost_note]
    text = '\n'.join(lines) + '\n'
    text += ('\nMetrics as logged by BasicSR (mean over the test set). GMACs: torch.utils.flop_counter FLOPs / 2 '
             'for one 1x3 input of the given size.')
    if args.latency:
        text += (f' Latency: median of {args.repeats} synchronised forward passes on {resolve_device(args.device)}, '
                 f'{args.precision}, after {args.warmup} warm-up run(s).')
    text += '\n'
    if notes:
        text += '\n' + '\n'.join(notes) + '\n'
    return text


def plot(experiments, path, use_latency):
    """Score against latency (or MACs when latency was not measured)."""
    metric = next((m for m in metric_columns(experiments) if 'psnr' in m.lower()), None)
    points = []
    for experiment in experiments:
        x = experiment.latency_ms if use_latency else (experiment.macs / 1e9 if experiment.macs else None)
        for dataset, validation in experiment.validations.items():
            if x is not None and metric in validation.metrics:
                points.append((x, validation.metrics[metric], f'{experiment.name} ({dataset})'))
    if not points:
        return f'nothing to plot (need {metric or "a psnr metric"} and {"latency" if use_latency else "MACs"}): ' \
               f'skipped {path}'
    return labelled_scatter(points, path, 'median latency (ms)' if use_latency else 'GMACs per forward pass', metric,
                            command='compare')


def build_parser():
    parser = argparse.ArgumentParser(description='Compare BasicSR experiments: scores, params, MACs, latency.')
    parser.add_argument('inputs', nargs='+', help='results/<name> or experiments/<name> folders, or option files')
    parser.add_argument('--root', default='.', help='where results/ and experiments/ are, for option files')
    parser.add_argument('--pick', choices=['last', 'best'], default='last',
                        help='which validation of a training log to report (default last)')
    parser.add_argument('--best-by', default='psnr', help='metric --pick best maximises (default psnr)')
    parser.add_argument('--size', default='256x256', help='input size for MACs and latency (default 256x256)')
    parser.add_argument('--no-cost', action='store_true', help='skip params/MACs (no network built)')
    parser.add_argument('--latency', action='store_true', help='measure latency (runs each network)')
    parser.add_argument('--device', default='auto', help='device for --latency (default auto)')
    parser.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--out', help='also write the table to this Markdown file')
    parser.add_argument('--plot', help='PSNR-vs-latency plot (PSNR-vs-MACs without --latency), PNG')
    return parser


def compare(args):
    """Build, print (and write) the table; returns the exit status. Raises UserError."""
    size = parse_size(args.size, '--size')
    check_report_paths('compare', args.inputs, {'--out': args.out, '--plot': args.plot})
    experiments = [load_experiment(path, args.root, args.pick, args.best_by) for path in args.inputs]
    if not args.no_cost:
        for experiment in experiments:
            add_costs(experiment, size, args)
    table = markdown_table(experiments, size, args)
    print(table)
    if args.out:
        write_report(args.out, table, 'compare')
    if args.plot:
        print(plot(experiments, args.plot, args.latency), file=sys.stderr)
    return 0


def main(argv=None):
    return status_or_user_error(compare, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
