"""Errors this plugin raises for bad set-ups and bad input, so entry points can print
one clear sentence instead of a traceback."""


class DependencyError(ImportError):
    """A required package is missing or cannot be imported on this stack."""


class OptionError(ValueError):
    """An option file that cannot be used: missing, malformed, or naming unknown types."""
