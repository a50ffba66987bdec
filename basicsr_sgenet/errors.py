"""Errors this plugin raises for bad set-ups and bad input, so entry points can print
one clear sentence instead of a traceback."""
import sys


class DependencyError(ImportError):
    """A required package is missing or cannot be imported on this stack."""


class OptionError(ValueError):
    """An option file that cannot be used: missing, malformed, or naming unknown types."""


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


class LaunchError(RuntimeError):
    """A distributed launch that cannot work: outside torchrun, or a backend the hardware lacks."""
