"""What a study reports: per run, the validation curve and final scores read back from
BasicSR's logs; per variant, mean ± std over seeds, parameters, MACs and training time;
one markdown table and one plot of validation PSNR against iterations."""
import datetime
import json
import os
import statistics
from collections import OrderedDict

from basicsr_sgenet.integration.errors import StudyError
from basicsr_sgenet.tools.clock import format_clock
from basicsr_sgenet.tools.machine import describe_machine
from basicsr_sgenet.tools.study.json_files import read_json, write_json


# ----------------------------------------------------------------------------- per run

def collect_result(run, train_seconds):
    """A finished run's validations (by iteration, from every log of the run: a resumed
    run has one log per attempt) and final metrics."""
    from basicsr_sgenet.tools.experiment_logs import find_logs, parse_log_file

    folder = os.path.join(run.directory, 'experiments', run.experiment)
    by_iteration = OrderedDict()
    last = None
    for path in find_logs(folder):
        for validation in parse_log_file(path).validations:
            if validation.iteration is not None:
                by_iteration[validation.iteration] = validation.metrics
            last = validation
    if last is None:
        raise StudyError(f'run {run.label} finished but its logs in {folder} hold no validation.')
    total_iter = run.options['train']['total_iter']
    # BasicSR validates once more after the last iteration: that block is the final score.
    by_iteration[total_iter] = last.metrics
    return {'variant': run.variant, 'seed': run.seed, 'iters': total_iter, 'train_seconds': round(train_seconds, 1),
            'final': last.metrics,
            'validations': [{'iteration': it, 'metrics': metrics} for it, metrics in sorted(by_iteration.items())]}


# ----------------------------------------------------------------------------- per variant

def network_costs(study, runs):
    """{variant: (parameters, MACs)} for one forward pass at ``study.macs_size``."""
    from basicsr_sgenet.inference.network import spec_from_options
    from basicsr_sgenet.tools.profiling import build_on_meta, count_macs, count_parameters

    costs = {}
    height, width = study.macs_size
    for run in runs:
        if run.variant in costs:
            continue
        spec = spec_from_options(run.options, study.path)
        network = build_on_meta(spec)
        costs[run.variant] = (count_parameters(network), count_macs(spec, height, width, network=network)[0])
    return costs


def input_scores(options, cache_path):
    """The validation metrics of the blurred input against the ground truth: the score of
    doing nothing, which every variant must beat. Cached: the validation set is fixed."""
    cached = read_json(cache_path)
    val_options = next(dataset for phase, dataset in options['datasets'].items() if phase.startswith('val'))
    key = json.dumps({'gt': val_options.get('dataroot_gt'), 'lq': val_options.get('dataroot_lq'),
                      'metrics': options['val']['metrics']}, sort_keys=True, default=str)
    if cached and cached.get('key') == key:
        return cached['scores']
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_metric
    from basicsr.utils import tensor2img

    dataset = build_dataset(dict(val_options, phase='val', scale=options.get('scale', 1)))
    sums = OrderedDict((name, 0.0) for name in options['val']['metrics'])
    for index in range(len(dataset)):
        item = dataset[index]
        data = {'img': tensor2img(item['lq']), 'img2': tensor2img(item['gt'])}
        for name, metric in options['val']['metrics'].items():
            sums[name] += float(calculate_metric(data, dict(metric)))
    scores = {name: value / len(dataset) for name, value in sums.items()}
    write_json(cache_path, {'key': key, 'scores': scores})
    return scores


def summarize(results, metric_names):
    """{metric: (mean, std or None, n)} over the runs in ``results``."""
    summary = OrderedDict()
    for name in metric_names:
        values = [result['final'][name] for result in results if name in result['final']]
        if values:
            summary[name] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None,
                             len(values))
    return summary


def curves(results, metric):
    """{iteration: [value per seed]} of ``metric`` over the runs in ``results``."""
    points = OrderedDict()
    for result in results:
        for validation in result['validations']:
            if metric in validation['metrics']:
                points.setdefault(validation['iteration'], []).append(validation['metrics'][metric])
    return OrderedDict(sorted(points.items()))


# ----------------------------------------------------------------------------- the report

def _format(value, digits):
    return f'{value:.{digits}f}'


def _cell(mean_std, digits):
    mean, std, count = mean_std
    return _format(mean, digits) + (f' ± {_format(std, digits)}' if std is not None else '') + \
        ('' if count > 1 else ' (1 seed)')


def _digits(metric):
    return 2 if 'psnr' in metric.lower() else 4


def psnr_metric(metric_names):
    """The metric to plot: ``psnr`` if validated, else the first one with psnr in its name."""
    names = list(metric_names)
    return 'psnr' if 'psnr' in names else next((name for name in names if 'psnr' in name.lower()), names[0])


def _signed(value):
    return f'{value:+.2f}' if round(value, 2) != 0 else '0.00'


def render_table(study, variants, results_by_variant, costs, reference, metric_names):
    """The markdown table: one row per variant, and the blurred input's scores."""
    from basicsr_sgenet.tools.profiling import format_gmacs

    first = variants[0]
    plotted = psnr_metric(metric_names)
    header = (['variant'] + [f'{name} (mean ± std)' for name in metric_names] +
              [f'Δ{plotted} vs blurred', f'Δ{plotted} vs {first}', 'seeds', 'params',
               f'GMACs {study.macs_size[0]}x{study.macs_size[1]}', 'train time / run'])
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    base_summary = summarize(results_by_variant.get(first, []), [plotted]).get(plotted)
    for variant in variants:
        results = results_by_variant.get(variant, [])
        params, macs = costs[variant]
        if not results:
            cells = ['not run yet'] * len(metric_names) + ['', '', '0']
        else:
            summary = summarize(results, metric_names)
            cells = [_cell(summary[name], _digits(name)) if name in summary else '' for name in metric_names]
            mean = summary[plotted][0] if plotted in summary else None
            cells.append(_signed(mean - reference[plotted]) if mean is not None and plotted in reference else '')
            cells.append(_signed(mean - base_summary[0]) if mean is not None and base_summary and variant != first
                         else '')
            cells.append(str(len(results)))
        seconds = [result['train_seconds'] for result in results]
        cells += [f'{params / 1e6:.3f}M', format_gmacs(macs), format_clock(statistics.mean(seconds)) if seconds else '']
        lines.append('| ' + ' | '.join([variant] + cells) + ' |')
    blurred = [_format(reference[name], _digits(name)) if name in reference else '' for name in metric_names]
    lines.append('| ' + ' | '.join(['(blurred input)'] + blurred + [''] * 6) + ' |')
    return '\n'.join(lines)


def plot_curves(variants, results_by_variant, metric, path, title, reference=None):
    """Validation ``metric`` against iterations: one line per variant (mean over seeds),
    shaded between the lowest and highest seed, and ``reference`` (the blurred input's
    score) as a dashed line. Skipped with a message without matplotlib."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return f'matplotlib is not installed: skipped the plot {path} (pip install matplotlib to get it)'
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for variant in variants:
        points = curves(results_by_variant.get(variant, []), metric)
        if not points:
            continue
        iterations = list(points)
        means = [statistics.mean(values) for values in points.values()]
        line, = ax.plot(iterations, means, marker='o', markersize=3, label=variant)
        ax.fill_between(iterations, [min(v) for v in points.values()], [max(v) for v in points.values()],
                        color=line.get_color(), alpha=0.15, linewidth=0)
    if reference is not None:
        ax.axhline(reference, color='grey', linestyle='--', linewidth=1, label='blurred input')
    ax.set_xlabel('iteration')
    ax.set_ylabel(f'validation {metric} (dB)' if 'psnr' in metric.lower() else f'validation {metric}')
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f'wrote {path}'


def write_report(study, output, runs, costs, reference, log=print):
    """results.md, results.json and val_psnr.png in ``output`` from the finished runs."""
    from basicsr_sgenet.tools.study.spec import overrides_summary

    variants = list(OrderedDict.fromkeys(run.variant for run in runs))
    results_by_variant = OrderedDict((variant, []) for variant in variants)
    for run in runs:
        result = read_json(run.result_path)
        if result is not None:
            results_by_variant[run.variant].append(result)
    metric_names = list(runs[0].options['val']['metrics'])
    plotted = psnr_metric(metric_names)
    finished = [result for results in results_by_variant.values() for result in results]
    total_seconds = sum(result['train_seconds'] for result in finished)
    lines = [
        f'# Study {study.name}', '',
        study.description.strip(), '',
        f'- study file: `{os.path.relpath(study.path)}`',
        f'- budget: {study.budget.iters} iterations per run, validated every {study.budget.val_every}; '
        f'seeds {", ".join(map(str, study.seeds))}',
        f'- finished runs: {len(finished)} of {len(runs)}; training time {format_clock(total_seconds)} in all '
        '(validation included)',
        f'- machine: {describe_machine()}',
        f'- written {datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}', '',
        render_table(study, variants, results_by_variant, costs, reference, metric_names), '',
        f'Metrics: the last validation of each run on the held-out set, mean ± sample std over seeds. '
        f'Δ{plotted}: difference of the means. MACs: one forward pass (torch\'s FLOP counter / 2).', '',
        '| variant | what it is | base option file | overrides (after the study\'s own) |', '|---|---|---|---|',
    ]
    for variant in variants:
        spec = study.variant(variant)
        lines.append(f'| {variant} | {spec.description} | `{os.path.relpath(spec.base or study.base)}` | '
                     f'`{overrides_summary(spec.overrides)}` |')
    lines += ['', f'![validation {plotted}](val_psnr.png)', '']
    report_path = os.path.join(output, 'results.md')
    with open(report_path, 'w') as f:
        f.write('\n'.join(line for line in lines) + '\n')
    write_json(os.path.join(output, 'results.json'), {
        'study': study.name, 'machine': describe_machine(), 'budget': vars(study.budget), 'input': reference,
        'costs': {variant: {'params': params, 'macs': macs} for variant, (params, macs) in costs.items()},
        'runs': finished})
    log(f'wrote {report_path}')
    plot_path = os.path.join(output, 'val_psnr.png')
    log(plot_curves(variants, results_by_variant, plotted, plot_path,
                    f'{study.name}: validation {plotted} (mean over seeds, band: min-max)',
                    reference=reference.get(plotted)))
    return report_path, plot_path
