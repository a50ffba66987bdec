"""The study's small JSON files (run state, results, cached input scores, the output
folder's mark): writes replace the old file atomically, so a study killed at any moment
restarts from a consistent state. A file that is there but cannot be used (damaged by
something else: a disk error, an editor) is one error line naming it and saying what to
do, never a traceback and never silently skipped (a result skipped would drop a seed from
the study's table)."""
import json
import os

from basicsr_sgenet.integration.atomic_files import atomic_write
from basicsr_sgenet.integration.errors import StudyError


def read_json(path, required=None, remedy='delete it'):
    """The value stored at ``path``, or None if there is no such file. StudyError naming
    the file when it cannot be read, is not JSON, or is not an object holding the
    ``required`` keys ({key: type or tuple of types})."""
    if not os.path.lexists(path):
        return None
    try:
        with open(path) as f:
            value = json.load(f)
    except OSError as err:
        raise StudyError(f'{path} cannot be read ({err.strerror or err}); {remedy}') from None
    except ValueError as err:
        raise StudyError(f'{path} is damaged (not valid JSON: {err}); {remedy}') from None
    if required is not None:
        if not isinstance(value, dict):
            raise StudyError(f'{path} is damaged (a JSON {type(value).__name__}, not an object); {remedy}')
        for key, kind in required.items():
            if not isinstance(value.get(key), kind) or isinstance(value.get(key), bool) and kind is not bool:
                raise StudyError(f'{path} is damaged ({key!r} missing or of the wrong type); {remedy}')
    return value


def write_json(path, value):
    """Store ``value`` at ``path`` through a temporary file and a rename; StudyError naming
    the file when it cannot be written (a full disk), the old file then as it was."""
    try:
        with atomic_write(path, 'w') as f:
            json.dump(value, f, indent=1)
    except OSError as err:
        raise StudyError(f'Cannot write {path} ({err.strerror or err}); it is as it was') from None
