"""BasicSR's trainer in a child process, followed line by line.

The demo and the study runner train through ``python -m basicsr_sgenet.train``, the
command a user runs, in a fresh process per run: BasicSR's loggers, registries and
random state start clean, and a run that is killed takes nothing else with it. Its
console output goes to a file in full; the parent reads it as it comes and turns
BasicSR's progress lines and validation blocks into ``Progress`` and ``Validation``
events, so it can print a short status line of its own.
"""
import os
import re
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

from basicsr_sgenet.tools.experiment_logs import METRIC, RECORD, VALIDATION

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# BasicSR's MessageLogger: "[name..][epoch:  3, iter:   1,200, lr:(2.0e-04,)] [eta: 0:01:47, time (data): 0.533
# (0.005)] l_pix: 1.6e-01 l_total: 1.6e-01"
PROGRESS = re.compile(r'^\[.*?\]\[epoch:\s*\d+, iter:\s*([\d,]+), lr:\(([^,)]*)')
ETA = re.compile(r'\[eta: ([^,]+), time \(data\): ([\d.]+)')
LOSS = re.compile(r'\b(l_\w+): (\S+)')


@dataclass
class Progress:
    """One BasicSR progress line."""
    iteration: int
    learning_rate: Optional[float] = None
    eta: Optional[str] = None            # BasicSR's estimate for the rest of this run, 'H:MM:SS'
    seconds_per_iter: Optional[float] = None
    losses: Dict[str, float] = field(default_factory=dict)

    @property
    def loss(self):
        """The total loss (``l_total``, else ``l_pix``), if logged."""
        return self.losses.get('l_total', self.losses.get('l_pix'))


@dataclass
class Validation:
    """One validation block: the iteration it followed and its metrics."""
    iteration: Optional[int]
    dataset: str
    metrics: Dict[str, float]


def _float(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse_progress(message):
    """``Progress`` from a log record's message, or None if it is not a progress line."""
    match = PROGRESS.match(message)
    if not match:
        return None
    progress = Progress(int(match.group(1).replace(',', '')), _float(match.group(2)))
    eta = ETA.search(message)
    if eta:
        progress.eta, progress.seconds_per_iter = eta.group(1), _float(eta.group(2))
    for name, value in LOSS.findall(message):
        if _float(value) is not None:
            progress.losses[name] = _float(value)
    return progress


class TrainingOutputReader:
    """Turns the trainer's console lines into events, in order."""

    def __init__(self, on_progress=None, on_validation=None):
        self.on_progress = on_progress
        self.on_validation = on_validation
        self.iteration = None
        self._validation = None  # (dataset, metrics) being read

    def _finish_validation(self):
        if self._validation is not None:
            dataset, metrics = self._validation
            self._validation = None
            if metrics and self.on_validation:
                self.on_validation(Validation(self.iteration, dataset, metrics))

    def feed(self, line):
        line = line.rstrip('\n')
        record = RECORD.match(line)
        if record:
            self._finish_validation()
            message = record.group(record.lastindex)  # the text after "<time> INFO: "
            progress = parse_progress(message)
            if progress is not None:
                self.iteration = progress.iteration
                if self.on_progress:
                    self.on_progress(progress)
            validation = VALIDATION.match(message)
            if validation:
                self._validation = (validation.group(1), {})
        elif self._validation is not None:
            metric = METRIC.match(line)
            if metric and _float(metric.group(2)) is not None:
                self._validation[1][metric.group(1)] = _float(metric.group(2))

    def close(self):
        self._finish_validation()


def child_environment(threads=None):
    """The environment for the trainer: this package importable (from a clone too), and
    ``threads`` torch threads if given."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get('PYTHONPATH')]))
    env['PYTHONUNBUFFERED'] = '1'
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return env


@dataclass
class TrainingResult:
    returncode: int
    tail: str  # the last lines of output, for error messages


def train_in_child(option_file, cwd, console_log, auto_resume=False, on_progress: Callable = None,
                   on_validation: Callable = None, threads=None, extra_args=()):
    """Run ``python -m basicsr_sgenet.train -opt option_file`` in ``cwd``; every output line
    goes to ``console_log`` (appended) and to the callbacks. Returns a TrainingResult."""
    command = [sys.executable, '-m', 'basicsr_sgenet.train', '-opt', option_file, *extra_args]
    if auto_resume:
        command.append('--auto_resume')
    reader = TrainingOutputReader(on_progress, on_validation)
    tail = deque(maxlen=40)
    os.makedirs(os.path.dirname(os.path.abspath(console_log)), exist_ok=True)
    with open(console_log, 'a') as log, subprocess.Popen(
            command, cwd=cwd, env=child_environment(threads), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1) as child:
        try:
            for line in child.stdout:
                log.write(line)
                log.flush()
                tail.append(line)
                reader.feed(line)
        except BaseException:
            child.terminate()  # Ctrl-C or an error in a callback: do not leave the trainer running
            child.wait()
            raise
        returncode = child.wait()
    reader.close()
    return TrainingResult(returncode, ''.join(tail))
