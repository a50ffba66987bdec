"""One table (and plot) comparing finished experiments: scores, size, cost, speed.

    python scripts/compare.py results/SGENet_GoPro results/SGENet_small_GoPro
    python scripts/compare.py experiments/SGENet_GoPro --pick best
    python scripts/compare.py options/test_SGENet_GoPro.yml options/test_SGENet_HIDE.yml \\
        --latency --device cuda --size 720x1280 --out compare.md --plot compare.png

Inputs (any mix):

* a BasicSR folder: ``results/<name>/`` (test logs) or ``experiments/<name>/`` (train
  logs with validation lines). Every ``*.log`` in it is read, oldest first.
* a test/train option file, and the logs of ``results/<name>/`` or
  ``experiments/<name>/`` under ``--root`` (default: the current folder), ``name``
  being the option file's ``name``.

The network of a row is the one that ran: BasicSR logs the options after applying
``--force_yml`` overrides, so the newest log's ``network_g`` comes first. The option file
BasicSR copies into the folder (and an option file given on the command line) lacks the
overrides: it is used only when no log holds options. Where the folder holds a checkpoint
(``models/net_g_*.pth``, the newest), its keys and shapes are checked against that
network; if they do not fit, the parameters are counted from the checkpoint instead and
MACs are left out. The "Network from" column says which of these each row used.

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
from basicsr_sgenet.inference.network import build_network, spec_from_option_file, spec_from_options
from basicsr_sgenet.integration.weights import describe_mismatch, read_state_dict
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
    network_from: str = 'unknown'  # short, for the table: which source the network came from
    network_notes: list = field(default_factory=list)  # longer explanations, printed below the table
    checkpoint: Optional[str] = None  # the newest net_g_*.pth in the folder, if any


def _copied_option_file(folder):
    files = sorted(glob.glob(os.path.join(folder, '*.yml')))
    return files[-1] if files else None


def _iteration_of(path):
    stem = os.path.splitext(os.path.basename(path))[0].rsplit('_', 1)[-1]
    return float('inf') if stem == 'latest' else int(stem) if stem.isdigit() else -1


def newest_checkpoint(folder):
    """``models/net_g_latest.pth``, else the highest ``net_g_<iter>.pth`` (None: no checkpoint)."""
    files = glob.glob(os.path.join(folder, 'models', 'net_g_*.pth'))
    return max(files, key=_iteration_of) if files else None


def _logged_spec(parsed_logs):
    """The ``network_g`` the newest log printed (BasicSR prints options after overrides)."""
    for parsed in reversed(parsed_logs):
        spec = spec_from_options(parsed.options, f'the options logged in {parsed.path}')
        if spec is not None:
            return spec, parsed.path
    return None, None


def choose_network(experiment, parsed_logs, option_file):
    """Set ``experiment.network`` to what ran: logged options first, else ``option_file``
    (copied by BasicSR, or given by the user), which lacks command-line overrides."""
    logged, log = _logged_spec(parsed_logs)
    written = spec_from_option_file(option_file) if option_file else None
    if logged is not None:
        experiment.network = logged
        kind = 'test log' if os.path.basename(log).startswith('test_') else 'train log'
        experiment.network_from = kind
        if written is not None and (written.arch, written.kwargs) != (logged.arch, logged.kwargs):
            experiment.network_notes.append(
                f'network from {log}: {logged.describe()}; {option_file} says {written.describe()} '
                '(a --force_yml override); the logged one ran')
    elif written is not None:
        experiment.network = written
        experiment.network_from = 'option file (no overrides)'
        experiment.network_notes.append(
            f'network from {option_file}: no log holds options, so --force_yml overrides, if any, are not seen')


def load_experiment(path, root, pick, best_by):
    """Experiment from a results/experiments folder or an option file."""
    if os.path.isdir(path):
        folder, name = path, os.path.basename(os.path.normpath(path))
        option_file = _copied_option_file(folder)
    elif os.path.isfile(path) and path.endswith(('.yml', '.yaml')):
        try:
            name = read_option_file(path).get('name')
        except OptionError as err:
            raise InferenceError(str(err)) from None
        if not name:
            raise InferenceError(f'Option file {path} has no "name"; cannot find its results')
        spec_from_option_file(path)  # an option file without a usable network_g is an error here
        option_file = path
        candidates = [os.path.join(root, top, name) for top in ('results', 'experiments')]
        folder = next((c for c in candidates if find_logs(c)), candidates[0])
    else:
        raise InferenceError(f'{path} is neither a results/experiments folder nor an option file (.yml)')

    merged = ParsedLog(folder)
    logs = find_logs(folder)
    parsed_logs = [parse_log_file(log) for log in logs]
    for parsed in parsed_logs:
        merged.validations += parsed.validations
    validations = best_validations(merged, best_by) if pick == 'best' else latest_validations(merged)
    experiment = Experiment(name=name, folder=folder, logs=logs, validations=validations,
                            checkpoint=newest_checkpoint(folder))
    choose_network(experiment, parsed_logs, option_file)
    return experiment


def _checkpoint_state(experiment):
    try:
        return read_state_dict(experiment.checkpoint)[0]
    except InferenceError as err:
        experiment.network_notes.append(f'{err}; not used')
        return None


def _params_from_checkpoint(experiment, file_state, why):
    experiment.params = sum(tensor.numel() for tensor in file_state.values())
    experiment.network_from = f'{os.path.basename(experiment.checkpoint)} (params only)'
    experiment.network_notes.append(f'{why}. Params are every tensor in {experiment.checkpoint} (buffers, if the '
                                    'network has any, included); MACs are not known without the network')


def _check_against_checkpoint(experiment, meta_network):
    """True if the network fits the folder's checkpoint (or there is none, or it cannot
    be read). If it does not fit, the parameters come from the checkpoint instead."""
    if experiment.checkpoint is None:
        return True
    file_state = _checkpoint_state(experiment)
    if file_state is None:
        return True
    mismatch = describe_mismatch(meta_network.state_dict(), file_state)
    if mismatch is None:
        experiment.network_from += f', fits {os.path.basename(experiment.checkpoint)}'
        return True
    _params_from_checkpoint(experiment, file_state, f'{experiment.checkpoint} does not fit '
                                                    f'{experiment.network.describe()} (from '
                                                    f'{experiment.network.source}): {mismatch}')
    return False


def add_costs(experiment, size, args):
    if experiment.network is None:
        file_state = _checkpoint_state(experiment) if experiment.checkpoint else None
        if file_state is None:
            experiment.cost_note = 'network unknown'
        else:
            _params_from_checkpoint(experiment, file_state, 'no log or option file names the network')
        return
    try:
        meta_network = build_on_meta(experiment.network)
        if not _check_against_checkpoint(experiment, meta_network):
            return
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
               ['Validation', 'Network from', 'Params (M)', f'GMACs @{size_text}', f'Latency @{size_text} (ms)'])
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]

    def cost_cells(experiment):
        params = '–' if experiment.params is None else f'{experiment.params / 1e6:.2f}'
        macs = '–' if experiment.macs is None else format_gmacs(experiment.macs)
        latency = '–' if experiment.latency_ms is None else f'{experiment.latency_ms:.1f}'
        return [experiment.network_from, params, macs, latency]

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
    notes += [f'- {e.name}: {note}' for e in experiments for note in e.network_notes]
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
    return labelled_scatter(points, path, 'median latency (ms)' if use_latency else 'GMACs per forward pass', metric)


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
    experiments = [load_experiment(path, args.root, args.pick, args.best_by) for path in args.inputs]
    if not args.no_cost:
        for experiment in experiments:
            add_costs(experiment, size, args)
    table = markdown_table(experiments, size, args)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table)
    if args.plot:
        print(plot(experiments, args.plot, args.latency), file=sys.stderr)
    return 0


def main(argv=None):
    return status_or_user_error(compare, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
