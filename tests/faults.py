"""Helpers for the fault-injection tables (tests/test_fault_injection*.py): run an entry
point as a child that a test can interrupt, kill or starve of disk, and compare the files
on disk before and after.

Children are forked by ``tests/entry_point_runner.py`` (torch and BasicSR imported once).
A detached child leads its own process group, as a command started from a shell does:
``interrupt`` sends SIGINT to the whole group, as Ctrl-C in a terminal does (worker
processes included); ``kill`` sends SIGKILL to the command's process only, as the OOM
killer does. ``file_size_limit`` runs it under RLIMIT_FSIZE with SIGXFSZ ignored, so every
write past that many bytes fails with EFBIG, as on a full disk.
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

from conftest import REPO_ROOT, python_env

INTERRUPTED_STATUS = 130
ERROR_LINE = re.compile(r'^([^:]+: )?error: ')  # ours, or argparse's "<prog>: error: ..."


class Child:
    def __init__(self, runner, pid, stdout, stderr):
        self.runner, self.pid, self.stdout_path, self.stderr_path = runner, pid, stdout, stderr

    def output(self):
        with open(self.stdout_path) as out, open(self.stderr_path) as err:
            return out.read(), err.read()

    def interrupt(self):
        """Ctrl-C: SIGINT to the command's process group."""
        os.killpg(self.pid, signal.SIGINT)

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)

    def wait(self):
        return self.runner.wait(self.pid)


class FaultRunner:
    """Runs ``python <argv>`` as forked children of one long-lived interpreter."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.count = 0
        self.process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, 'tests', 'entry_point_runner.py')],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=python_env())

    def _ask(self, request):
        self.process.stdin.write(json.dumps(request) + '\n')
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, 'the entry-point runner died'
        return json.loads(answer)

    def _files(self):
        self.count += 1
        return tuple(os.path.join(self.scratch, f'{self.count}.{name}') for name in ('out', 'err'))

    def start(self, argv, cwd, file_size_limit=None):
        stdout, stderr = self._files()
        answer = self._ask({'argv': argv, 'cwd': cwd, 'stdout': stdout, 'stderr': stderr, 'detach': True,
                            'file_size_limit': file_size_limit})
        return Child(self, answer['pid'], stdout, stderr)

    def wait(self, pid):
        return self._ask({'wait': pid})['status']

    def run(self, argv, cwd, file_size_limit=None):
        """Run to the end; returns (status, stdout, stderr)."""
        child = self.start(argv, cwd, file_size_limit)
        status = child.wait()
        return (status, *child.output())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def wait_until(condition, child, timeout=120.0, what='the command to start working'):
    """Poll ``condition()`` every 10 ms; fails the test if ``child`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f'timed out waiting for {what}: {child.output()}')
        if not os.path.exists(f'/proc/{child.pid}') or _is_zombie(child.pid):
            raise AssertionError(f'the command ended before {what}: {child.output()}')
        time.sleep(0.01)


def _is_zombie(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def snapshot(root):
    """{relative path: 'folder' or sha256 of the content} of everything under ``root``."""
    entries = {}
    for parent, folders, files in os.walk(root):
        for name in folders:
            entries[os.path.relpath(os.path.join(parent, name), root)] = 'folder'
        for name in files:
            path = os.path.join(parent, name)
            with open(path, 'rb') as f:
                entries[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return entries


def changed_entries(before, after):
    """Paths of ``before`` that are gone or different in ``after`` (new paths are not counted)."""
    return sorted(path for path, value in before.items() if after.get(path) != value)


def error_messages(stderr):
    """Each ``error:`` line."""
    return [line for line in stderr.splitlines() if ERROR_LINE.match(line)]


def assert_one_error_line(stderr, *fragments):
    """No traceback, exactly one ``error:`` line, holding every fragment."""
    assert 'Traceback' not in stderr, stderr
    errors = error_messages(stderr)
    assert len(errors) == 1, stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]
