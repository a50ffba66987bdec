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

# "<time stamp> INFO: <message>", the start of every log record; other lines continue the last one.
RECORD = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) [A-Z]+: ?(.*)$')
VALIDATION = re.compile(r'^Validation (.+?)\s*$')
METRIC = re.compile(r'^\s*# ([^:\s]+): (\S+)')
# BasicSR's MessageLogger: "[name..][epoch:  3, iter:   1,200, lr:(2.0e-04,)] [eta: 0:01:47, time (data): 0.533
# (0.005)] l_pix: 1.6e-01 l_total: 1.6e-01"
PROGRESS = re.compile(r'^\[.*?\]\[epoch:\s*\d+, iter:\s*([\d,]+), lr:\(([^,)]*)')
ETA = re.compile(r'\[eta: ([^,]+), ')
TIMES = re.compile(r'time \(data\): ([\d.]+) \(([\d.]+)\)')
LOSS = re.compile(r'\b(l_\w+): (\S+)')
AVG_TIMER_SEGMENT = 201  # basicsr.utils.AvgTimer(window=200) restarts its average after 201 records


@dataclass
class Validation:
    """One validation block: its dataset, metrics and the iteration it followed (None in test logs)."""
    dataset: str
    metrics: Dict[str, float]
    iteration: Optional[int] = None


@dataclass
class Progress:
    """One progress line: iteration, learning rate, BasicSR's ETA for the run ('H:MM:SS'),
    running-average step and data times, losses, and the line's time stamp (s)."""
    iteration: int
    learning_rate: Optional[float] = None
    eta: Optional[str] = None
    step_average: Optional[float] = None
    data_average: Optional[float] = None
    losses: Dict[str, float] = field(default_factory=dict)
    time: Optional[float] = None

    @property
    def seconds_per_iter(self):
        return self.step_average

    @property
    def loss(self):
        """The total loss (``l_total``, else ``l_pix``), if logged."""
        return self.losses.get('l_total', self.losses.get('l_pix'))


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


def parse_progress(message, stamp=None):
    """``Progress`` from a log record's message, or None if it is not a progress line."""
    match = PROGRESS.match(message)
    if not match:
        return None
    progress = Progress(int(match.group(1).replace(',', '')), _float(match.group(2)))
    if stamp is not None:
        progress.time = datetime.strptime(stamp, '%Y-%m-%d %H:%M:%S,%f').timestamp()
    eta = ETA.search(message)
    if eta:
        progress.eta = eta.group(1)
    times = TIMES.search(message)
    if times:
        progress.step_average, progress.data_average = float(times.group(1)), float(times.group(2))
    for name, value in LOSS.findall(message):
        if _float(value) is not None:
            progress.losses[name] = _float(value)
    return progress


class LogReader:
    """Reads a BasicSR log (or the trainer's console output) line by line, as it is
    written, and turns it into events in order: ``on_progress(Progress)``,
    ``on_validation(Validation)`` and ``on_options(dict)`` for the option dump. One reader
    for finished log files (``parse_log_text``) and for a run being followed
    (``training_process``)."""

    def __init__(self, on_progress=None, on_validation=None, on_options=None):
        self.on_progress, self.on_validation, self.on_options = on_progress, on_validation, on_options
        self.iteration = None
        self._record = None  # (message, continuation lines) of the record being read

    def feed(self, line):
        line = line.rstrip('\n')
        match = RECORD.match(line)
        if match:
            self._finish_record()
            progress = parse_progress(match.group(2), match.group(1))
            if progress is not None:
                self.iteration = progress.iteration
                if self.on_progress:
                    self.on_progress(progress)
            self._record = (match.group(2), [])
        elif self._record is not None:
            self._record[1].append(line)

    def close(self):
        self._finish_record()

    def _finish_record(self):
        if self._record is None:
            return
        message, continuation = self._record
        self._record = None
        validation = VALIDATION.match(message)
        if validation:
            metrics = {}
            for line in continuation:
                metric = METRIC.match(line)
                if metric and _float(metric.group(2)) is not None:
                    metrics[metric.group(1)] = _float(metric.group(2))
            if metrics and self.on_validation:
                self.on_validation(Validation(validation.group(1), metrics, self.iteration))
        elif self.on_options and any(line.startswith('  network_g:[') for line in continuation):
            self.on_options(parse_option_dump(continuation))


def parse_log_lines(lines, path='<log>'):
    """ParsedLog of one BasicSR log's lines (any iterable: a file is read as it streams)."""
    parsed = ParsedLog(path)

    def keep_first_options(options):
        if parsed.options is None:
            parsed.options = options

    reader = LogReader(parsed.progress.append, parsed.validations.append, keep_first_options)
    for line in lines:
        reader.feed(line)
    reader.close()
    return parsed


def parse_log_text(text, path='<log>'):
    """ParsedLog of one BasicSR log's text."""
    return parse_log_lines(text.splitlines(), path)


def parse_log_file(path):
    with open(path, errors='replace') as f:
        return parse_log_lines(f, path)


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
