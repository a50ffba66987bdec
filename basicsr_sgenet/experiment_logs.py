"""Reading results back from BasicSR's log files.

BasicSR writes ``results/<name>/test_<name>_<time>.log`` (test) and
``experiments/<name>/train_<name>_<time>.log`` (train). Both hold:

* the options, printed by ``basicsr.utils.options.dict2str`` as indented
  ``key: value`` lines, with ``key:[`` ... ``]`` around nested sections;
* one block per validation run, from ``SRModel._log_validation_metric_values``::

      2024-05-01 10:30:00,000 INFO: Validation GoPro
      \t # psnr: 32.9600\tBest: 32.9600 @ 400000 iter
      \t # ssim: 0.9610\tBest: 0.9610 @ 400000 iter

* in training logs, progress lines ``[name..][epoch:  3, iter:   5,000, lr:(...)]``;
  a validation block belongs to the last iteration logged before it (BasicSR validates
  right after logging when ``val_freq`` is a multiple of ``print_freq``, the usual case).
"""
import ast
import glob
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

RECORD = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+: ?(.*)$')
VALIDATION = re.compile(r'^Validation (.+?)\s*$')
METRIC = re.compile(r'^\s*# ([^:\s]+): (\S+)')
PROGRESS_ITER = re.compile(r'\biter:\s*([\d,]+)')


@dataclass
class Validation:
    dataset: str
    metrics: Dict[str, float]
    iteration: Optional[int] = None  # None in test logs


@dataclass
class ParsedLog:
    path: str
    validations: List[Validation] = field(default_factory=list)
    options: Optional[dict] = None


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
    records = []  # (first line message, continuation lines)
    for line in text.splitlines():
        match = RECORD.match(line)
        if match:
            records.append((match.group(1), []))
        elif records:
            records[-1][1].append(line)
    iteration = None
    for message, continuation in records:
        progress = PROGRESS_ITER.search(message)
        if progress and message.startswith('['):
            iteration = int(progress.group(1).replace(',', ''))
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
