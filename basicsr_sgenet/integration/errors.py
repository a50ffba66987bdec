"""Every error this plugin raises for something the user can fix.

All derive from ``UserError``: entry points print its message as one ``error: ...`` line
and exit with status 2, instead of a traceback. Each also derives from the built-in
type code elsewhere would expect (ValueError for bad values, ...), so ``except
ValueError`` keeps working.
"""
import sys


# What a shell reports for a command that Ctrl-C (SIGINT) ended: 128 + 2.
INTERRUPTED_STATUS = 130


class UserError(Exception):
    """A mistake or broken input the user can fix; the message names the file, key or argument."""
    exit_status = 2


class DependencyError(UserError, ImportError):
    """A required package is missing or cannot be imported on this stack."""


class OptionError(UserError, ValueError):
    """An option file that cannot be used: missing, malformed, or naming things that do not exist."""


class LaunchError(UserError, RuntimeError):
    """A distributed launch that cannot work: outside torchrun, or a backend the hardware lacks."""


class BadStateError(UserError, RuntimeError):
    """A training-state file, or a folder of them, that cannot be used to resume."""


class CheckpointMismatchError(UserError, RuntimeError):
    """Network weights that do not fit the network built from the option file."""


class NonFiniteLossError(UserError, RuntimeError):
    """The training loss became NaN or infinite; training stopped before the optimizer step."""


class InferenceError(UserError, ValueError):
    """Input that inference, export or benchmarking cannot use (arguments, weights, paths)."""


class ImageReadError(InferenceError):
    """One input image that cannot be read; the CLI skips it and goes on."""


class PreparationError(UserError, ValueError):
    """Dataset preparation input or output that cannot be used; nothing has been written."""


class OutputFolderError(UserError, OSError):
    """An output folder that cannot be created or written; found before any work starts."""


class WriteError(UserError, OSError):
    """A file a run could not write (full disk, no permission, read-only file system),
    found while writing; nothing truncated is left under the file's name."""

    @classmethod
    def from_os_error(cls, err, path=None, what='file'):
        """The one line for ``err`` (an OSError) while writing ``path``."""
        path = path or getattr(err, 'filename', None) or '(unknown file)'
        reason = getattr(err, 'strerror', None) or first_line(err)
        return cls(f'cannot write the {what} {path}: {reason}; nothing truncated was left under its name '
                   '(free disk space or fix the permissions, then run again).')


class StudyError(UserError, RuntimeError):
    """A study file, or a run of a study, that cannot be used or failed."""


class DemoError(UserError, RuntimeError):
    """A stage of the demo that failed; the message says which and where its log is."""


class Interrupted(UserError):
    """Ctrl-C, reported with what the command left on disk (``interrupted (Ctrl-C); ...``);
    exit status 130. Raise it ``from None`` where a command knows more than the generic
    line of ``status_or_user_error``."""
    exit_status = INTERRUPTED_STATUS

    def __init__(self, what_was_left):
        super().__init__(f'interrupted (Ctrl-C); {what_was_left}')


# What every file writer guarantees (integration/atomic_files.py): results take their
# final names only when complete.
NOTHING_HALF_WRITTEN = 'nothing half-written was left (every file takes its name only when complete)'


def first_line(error):
    """The first line of an exception's message (torch errors can run to pages)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def status_or_user_error(function, *args, **kwargs):
    """Call ``function``, which returns an exit status; a UserError becomes one ``error:``
    line on stderr and status 2, and Ctrl-C (KeyboardInterrupt, or ``Interrupted`` saying
    what was left) one ``error: interrupted (Ctrl-C); ...`` line and status 130, never a
    traceback. For ``main(argv)`` functions that return their status; every entry point
    goes through here (or ``exit_on_user_error``)."""
    try:
        return function(*args, **kwargs)
    except KeyboardInterrupt:
        return _report(Interrupted(NOTHING_HALF_WRITTEN))
    except UserError as err:
        return _report(err)


def exit_on_user_error(function, *args, **kwargs):
    """``status_or_user_error`` for functions that do not return a status: returns what
    ``function`` returns; a UserError or Ctrl-C exits with its one line and status."""
    outcome = []

    def call():
        outcome.append(function(*args, **kwargs))
        return 0

    status = status_or_user_error(call)
    if status:
        sys.exit(status)
    return outcome[0]


def _report(err):
    print(f'error: {err}', file=sys.stderr, flush=True)
    return err.exit_status


def print_uncaught_briefly(error_type):
    """If an ``error_type`` reaches the top level uncaught, print ``error: <message>``
    instead of the traceback; every other exception prints as before."""
    previous_hook = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, error_type):
            sys.stderr.write(f'error: {exc}\n')
        else:
            previous_hook(exc_type, exc, tb)

    sys.excepthook = hook
