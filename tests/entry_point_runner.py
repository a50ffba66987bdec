"""Run the package's entry points as child processes of one interpreter that has already
imported torch and BasicSR, so that each run costs a fork instead of 4 s of imports.

    python tests/entry_point_runner.py      (started by tests/test_bad_inputs.py)

Reads one JSON request per line on stdin, ``{"argv": [...], "cwd": ..., "stdout": file,
"stderr": file, "deny_write": [folders]}``, where ``argv`` is what would follow
``python`` on a command line (``-m module ...`` or ``script.py ...``). For each it forks a
child that runs the entry point exactly as ``python`` would (``runpy``, as
``__main__``, its own cwd, stdin from /dev/null, stdout/stderr to the given files;
``sys.exit`` codes, tracebacks and atexit handlers as the interpreter has them), waits
for it, and answers ``{"status": <exit status, -N for signal N>}``. The child skips only
the interpreter's final teardown of every module (a second with torch loaded).

For fault injection (``tests/faults.py``) a request may also hold ``"detach": true``: the
answer is then ``{"pid": ...}`` at once, so the test can signal the child (it leads its own
process group, as a command started from a shell does, so a Ctrl-C reaches its workers
too), and ``{"wait": pid}`` later answers its status. ``"file_size_limit": bytes`` runs
the child under RLIMIT_FSIZE with SIGXFSZ ignored: every write past that size fails with
EFBIG, as on a full disk.

``deny_write`` makes ``os.access`` report those folders as not writable, which is what an
ordinary user sees for a read-only folder; tests run as root (CI containers), for whom
chmod does not make a folder read-only.
"""
import atexit
import json
import os
import resource
import runpy
import signal
import sys

import torch  # noqa: F401  the slow imports every entry point shares
import basicsr  # noqa: F401,E402  (its auto-load hook registers basicsr_sgenet, as at any start-up)

CHILD_TIME_LIMIT_S = 300


def _deny_write(folders):
    real_access = os.access
    denied = {os.path.realpath(folder) for folder in folders}

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and os.path.realpath(path) in denied:
            return False
        return real_access(path, mode, *args, **kwargs)

    os.access = access


def _become_entry_point(request):
    """In the child: set up the process as ``python <argv>`` would, then run it."""
    os.chdir(request['cwd'])
    if request.get('detach'):
        os.setpgid(0, 0)
    if request.get('file_size_limit') is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (request['file_size_limit'], hard_limit))
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request['stdout'], os.O_WRONLY | os.O_CREAT),
                            (2, request['stderr'], os.O_WRONLY | os.O_CREAT)):
        handle = os.open(path, flags, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    signal.alarm(CHILD_TIME_LIMIT_S)  # a hung entry point dies instead of hanging the test run
    _deny_write(request.get('deny_write') or [])
    argv = list(request['argv'])
    if argv[0] == '-m':
        sys.argv = [argv[1]] + argv[2:]
        sys.path[0] = request['cwd']  # python -m puts the current directory first
        runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
    else:
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))  # python script.py puts its folder first
        runpy.run_path(argv[0], run_name='__main__')


def _exit_status(exit_request):
    """The status ``sys.exit(code)`` gives at the top level, printing a message as it does."""
    code = exit_request.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _run_child(request):
    """Run the entry point and end the process as the interpreter would (exit status,
    traceback through sys.excepthook, atexit handlers, flushed output), but without
    tearing down every module of torch, which takes a second."""
    try:
        _become_entry_point(request)
        status = 0
    except SystemExit as exit_request:
        status = _exit_status(exit_request)
    except BaseException:  # noqa: BLE001 -- exactly what the interpreter reports
        sys.excepthook(*sys.exc_info())
        status = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main():
    for line in sys.stdin:
        request = json.loads(line)
        if 'wait' in request:
            _, wait_status = os.waitpid(request['wait'], 0)
            print(json.dumps({'status': os.waitstatus_to_exitcode(wait_status)}), flush=True)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _run_child(request)  # never returns
        if request.get('detach'):
            print(json.dumps({'pid': pid}), flush=True)
            continue
        _, wait_status = os.waitpid(pid, 0)
        print(json.dumps({'status': os.waitstatus_to_exitcode(wait_status)}), flush=True)


if __name__ == '__main__':
    main()
