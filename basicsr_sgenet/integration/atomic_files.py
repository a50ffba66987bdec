"""Every file the plugin writes takes its final name only when complete: it is written to a
temporary name beside its final one (``.<name>.tmp-<pid>``, on the same file system, so the
rename is atomic) and renamed. A kill -9, a full disk or a Ctrl-C therefore never leaves a
truncated file under a final name, and the pid in the temporary name tells a later run
whether the writer is gone (its leftover can be removed) or still at work."""
import contextlib
import os
import re

_TEMPORARY = re.compile(r'^\.(.+)\.tmp-(\d+)$')


def temporary_path(path):
    """Where ``path`` is written before it takes its name: ``.<name>.tmp-<pid>`` beside it."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f'.{name}.tmp-{os.getpid()}')


def leftover_writer(name):
    """(final name, writer's pid) if ``name`` is one of these temporary files, else None."""
    match = _TEMPORARY.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def process_exists(pid):
    """Whether a process with this pid exists (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def give_final_name(temporary, path, replace=True):
    """Rename ``temporary`` to ``path``. Without ``replace``, a file that took the name
    meanwhile is never replaced: FileExistsError."""
    if replace:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # atomic, and fails if ``path`` exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.rename(temporary, path)
    else:
        os.remove(temporary)


@contextlib.contextmanager
def atomic_write(path, mode='wb', replace=True, durable=True, permissions=None):
    """``with atomic_write(path) as f: f.write(...)``: the file appears under ``path``
    only if the block finishes; on any error (OSError for a full disk included) or
    interruption the temporary file is removed and the error propagates.

    ``durable`` flushes to disk before the rename (checkpoints, datasets); ``permissions``
    sets the mode the final file gets (default: what ``open`` would have given it)."""
    temporary = temporary_path(path)
    try:
        with open(temporary, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if permissions is not None:
            os.chmod(temporary, permissions)
        give_final_name(temporary, path, replace)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
