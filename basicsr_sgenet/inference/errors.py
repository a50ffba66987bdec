"""The error inference raises for bad input (arguments, weights, paths), so the CLI can
print one ``error:`` line instead of a traceback."""


class InferenceError(ValueError):
    """Input that inference cannot use; the message names the file, key or argument."""


def first_line(error):
    """The first line of an exception's message (torch errors can run to pages)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
