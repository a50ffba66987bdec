"""BasicSR's trainer in a child process, followed line by line.

The demo and the study runner train through ``python -m basicsr_sgenet.train``, the
command a user runs, in a fresh process per run: BasicSR's loggers, registries and
random state start clean, and a run that is killed takes nothing else with it. Its
console output goes to a file in full; the parent reads it as it comes and turns
BasicSR's progress lines and validation blocks into ``Progress`` and ``Validation``
events, so it can print a short status line of its own.
"""
import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from typing import Callable

from basicsr_sgenet.tools.experiment_logs import LogReader, Progress, Validation  # noqa: F401  (the events)

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    reader = LogReader(on_progress, on_validation)
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
