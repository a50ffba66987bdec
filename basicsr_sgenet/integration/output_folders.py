"""Output folders: checking that one can be written before any work starts, and creating
it only once the work is about to write.

Dataset preparation and deblurring a folder run for minutes; a typo'd, misplaced or
read-only output path should be one line at once, not a traceback after the work, and a
run that stops early should leave no empty folders behind.

The check asks the operating system (``os.access``: permissions and read-only mounts)
and writes nothing. The superuser passes permission checks, correctly: it can write to a
folder whose mode bits say read-only. Where only an attempt tells (special file systems
such as /sys, an NFS server that squashes root), creating the folder fails later, and
callers turn that into a one-line error as well.
"""
import os


def output_folder_problem(path):
    """Why ``path`` cannot be used as an output folder, or None: it is a file, no write
    permission in it, or (when it does not exist yet) it cannot be created because the
    nearest existing parent is a file or not writable. Creates nothing."""
    if os.path.islink(path) and not os.path.exists(path):
        return f'{path} is a link to {os.readlink(path)}, which does not exist'
    if os.path.exists(path):
        if not os.path.isdir(path):
            return f'{path} exists and is not a folder'
        if not os.access(path, os.W_OK | os.X_OK):
            return f'{path} is not writable (no permission to create files in it)'
        return None
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f'{path} cannot be created: {parent} is a file, not a folder'
    if not os.access(parent, os.W_OK | os.X_OK):
        return f'{path} cannot be created: no permission to create folders in {parent}'
    return None


def make_output_folder(path):
    """Create ``path`` and any missing parents; returns the folders this created, outermost
    first (for ``remove_if_empty``). Raises OSError as ``os.makedirs`` does."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.exists(current):
        missing.append(current)
        current = os.path.dirname(current)
    os.makedirs(path, exist_ok=True)
    return missing[::-1]


def remove_if_empty(created):
    """Remove the folders ``make_output_folder`` created, innermost first, as long as they
    are still empty (a run that wrote nothing leaves nothing)."""
    for folder in reversed(created):
        try:
            os.rmdir(folder)
        except OSError:
            return
