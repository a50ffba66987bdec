"""Reading results back from BasicSR's log files.

BasicSR writes ``results/<name>/test_<name>_<time>.log`` (test) and
``experiments/<name>/train_<name>_<time>.log`` (train). Both hold:

* the options, printed by ``basicsr.utils.options.dict2str`` as indented
  ``key: value`` lines, with ``key:[`` ... ``]`` around nested sections;
* one block per validation run, from ``SRModel._log_validation_metric_values``::

      2024-05-01 10:30:00,000 INFO: Validation GoPro
      \t # psnr: 32.9600\tBest: 32.9600 @ 400000 iter
      \t # ssim: 0.9610\tBest: 0.9610 @ 400000 iter

* in training logs, progress lines ``[name..][epoch:  3, iter:   5,000, lr:(...)] [eta: ...,
  time (data): 0.412 (0.003)] l_pix: ...``; a validation block belongs to the last
  iteration logged before it (BasicSR validates right after logging when ``val_freq`` is
  a multiple of ``print_freq``, the usual case).

``time (data)`` are running averages since the first iteration (``basicsr.utils.AvgTimer``,
restarted every 201 iterations) of the step time (asking the loader for the next batch
to the end of ``optimize_parameters``) and of the part spent waiting for the batch;
``step_statistics`` turns them back into per-iteration means.
"""
import ast
import glob
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Dict, List, Optional

RECORD = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) [A-Z]+: ?(.*)$')
VALIDATION = re.compile(r'^Validation (.+?)\s*$')
METRIC = re.compile(r'^\s*# ([^:\s]+): (\S+)')
PROGRESS = re.compile(r'^\[.*?\]\[epoch:\s*\d+, iter:\s*([\d,]+),')
TIMES = re.compile(r'time \(data\): ([\d.]+) \(([\d.]+)\)')
AVG_TIMER_SEGMENT = 201  # basicsr.utils.AvgTimer(window=200) restarts its average after 201 records


@dataclass
class Validation:
    dataset: str
    metrics: Dict[str, float]
    iteration: Optional[int] = None  # None in test logs


@dataclass
class Progress:
    """One progress line: its time stamp (s), iteration and running-average step/data times."""
    time: float
    iteration: int
    step_average: Optional[float] = None
    data_average: Optional[float] = None


@dataclass
class ParsedLog:
    path: str
    validations: List[Validation] = field(default_factory=list)
    options: Optional[dict] = None
    progress: List[Progress] = field(default_factory=list)


def _value(text):
    """A value as ``dict2str`` printed it (``str(v)``): Python literal if it is one."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_option_dump(lines):
    """Nested dict from ``dict2str`` output lines."""
    root = {}
    stack = [root]
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text == ']':
            if len(stack) > 1:
                stack.pop()
        elif text.endswith(':['):
            section = {}
            stack[-1][text[:-2]] = section
            stack.append(section)
        else:
            key, separator, value = text.partition(': ')
            if separator:
                stack[-1][key] = _value(value)
            elif text.endswith(':'):
                stack[-1][text[:-1]] = None
    return root


def _float(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse_log_text(text, path='<log>'):
    """ParsedLog of one BasicSR log's text."""
    parsed = ParsedLog(path)
    records = []  # (time stamp, first line message, continuation lines)
    for line in text.splitlines():
        match = RECORD.match(line)
        if match:
            records.append((match.group(1), match.group(2), []))
        elif records:
            records[-1][2].append(line)
    iteration = None
    for stamp, message, continuation in records:
        progress = PROGRESS.match(message)
        if progress:
            iteration = int(progress.group(1).replace(',', ''))
            times = TIMES.search(message)
            parsed.progress.append(Progress(datetime.strptime(stamp, '%Y-%m-%d %H:%M:%S,%f').timestamp(), iteration,
                                            *(float(value) for value in (times.groups() if times else ()))))
        validation = VALIDATION.match(message)
        if validation:
            metrics = {}
            for line in continuation:
                metric = METRIC.match(line)
                if metric and _float(metric.group(2)) is not None:
                    metrics[metric.group(1)] = _float(metric.group(2))
            if metrics:
                parsed.validations.append(Validation(validation.group(1), metrics, iteration))
        elif parsed.options is None and any(line.startswith('  network_g:[') for line in continuation):
            parsed.options = parse_option_dump(continuation)
    return parsed


def parse_log_file(path):
    with open(path, errors='replace') as f:
        return parse_log_text(f.read(), path)


def find_logs(folder):
    """BasicSR logs in ``folder``, oldest first (their names end in a sortable time)."""
    return sorted(glob.glob(os.path.join(folder, '*.log')), key=lambda p: (os.path.basename(p)[-19:], p))


def latest_validations(parsed):
    """{dataset: Validation} from the last validation of each dataset."""
    latest = {}
    for validation in parsed.validations:
        latest[validation.dataset] = validation
    return latest


def best_validations(parsed, metric):
    """{dataset: Validation} with the highest ``metric`` per dataset (datasets without
    it fall back to their last validation)."""
    best = {}
    for validation in parsed.validations:
        current = best.get(validation.dataset)
        value = validation.metrics.get(metric)
        if current is None or (value is not None and value > current.metrics.get(metric, float('-inf'))):
            best[validation.dataset] = validation
    return best


def _cumulative_totals(averages):
    """Total seconds up to and including each iteration, from AvgTimer's running averages
    (one per iteration, from the first): average x count, the count restarting every
    201 iterations."""
    totals, before_segment = [], 0.0
    for index, average in enumerate(averages):
        count = index % AVG_TIMER_SEGMENT + 1
        if count == 1 and totals:
            before_segment = totals[-1]
        totals.append(before_segment + count * average)
    return totals


def step_statistics(parsed, warmup):
    """(mean step s, mean data s, log-clock step s, measured iterations) of a training log
    with one progress line per iteration, the first ``warmup`` iterations left out.
    ValueError if the log cannot give them."""
    records = parsed.progress
    if [record.iteration for record in records] != list(range(1, len(records) + 1)):
        raise ValueError('the log does not hold one progress line per iteration from iteration 1')
    if len(records) <= max(warmup, 1):
        raise ValueError(f'only {len(records)} iteration(s) logged, need more than the {warmup} warm-up ones')
    step_totals = _cumulative_totals([record.step_average for record in records])
    data_totals = _cumulative_totals([record.data_average for record in records])
    measured = len(records) - warmup
    before = (lambda totals: totals[warmup - 1] if warmup else 0.0)
    step = (step_totals[-1] - before(step_totals)) / measured
    data = (data_totals[-1] - before(data_totals)) / measured
    # Time stamps: between the log lines of iterations max(warmup, 1) and the last one.
    first = max(warmup, 1) - 1
    clock = (records[-1].time - records[first].time) / (len(records) - 1 - first)
    if step <= 0:
        raise ValueError('the logged step times are zero: too few iterations or a too coarse log')
    return step, data, clock, measured
