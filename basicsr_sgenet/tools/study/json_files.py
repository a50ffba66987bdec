"""The study's small JSON files (run state, results, cached input scores): a file that is
missing or half-written reads as None, and writes replace the old file atomically, so a
study killed at any moment restarts from a consistent state."""
import json

from basicsr_sgenet.integration.atomic_files import atomic_write


def read_json(path):
    """The value stored at ``path``, or None if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path, value):
    """Store ``value`` at ``path`` through a temporary file and a rename."""
    with atomic_write(path, 'w') as f:
        json.dump(value, f, indent=1)
