"""The rule every command follows: it never deletes, moves or replaces a file or folder
it did not create, whatever the flags.

* An output equal to, inside, or containing an input is refused before any work
  (``overlap_problem``): replacing a result must never be able to reach the data it was
  made from.
* ``--overwrite`` (and a re-run) replaces only earlier results of the same command, which
  it recognises by a mark it left: a line in the Markdown files it writes, the
  ``Software`` text of its PNG plots (``written_by``), or the command's own record
  (deblur's ``.deblur-results.json``, a prepared dataset's ``preparation.json``, a study's
  ``.study.json``, the metadata of an exported ONNX file). Anything else under an output
  name is the user's, and the command stops naming it.
"""
import os

SOFTWARE = 'basicsr-sgenet {command}'
TEXT_MARK = '<!-- written by basicsr-sgenet {command}: it replaces this file only while this line is here -->'


def _real(path):
    return os.path.realpath(os.path.abspath(os.path.expanduser(str(path))))


def _inside(path, folder):
    return os.path.commonpath([path, folder]) == folder and path != folder


def overlap_problem(output, inputs, output_name):
    """Why ``output`` (described as ``output_name``, e.g. ``-o out.onnx``) may not be
    written given the ``inputs`` (paths), or None: it is one of them, lies inside one, or
    contains one. Links are followed."""
    target = _real(output)
    for source in inputs:
        if not source:
            continue
        real = _real(source)
        if target == real or (os.path.exists(output) and os.path.exists(source) and os.path.samefile(output, source)):
            return f'{output_name} is the input {source}; write the result somewhere else'
        if _inside(target, real):
            return f'{output_name} is inside the input {source}; write the result outside it'
        if _inside(real, target):
            return f'{output_name} contains the input {source}; write the result where no input is'
    return None


def text_mark(command):
    """The line that marks a text (Markdown) file as written by ``command``."""
    return TEXT_MARK.format(command=command)


def png_metadata(command):
    """matplotlib ``savefig(metadata=...)`` that marks a PNG as written by ``command``."""
    return {'Software': SOFTWARE.format(command=command)}


def written_by(path, command):
    """Whether the file at ``path`` carries ``command``'s mark (a Markdown line or a PNG's
    Software text)."""
    try:
        if path.lower().endswith('.png'):
            from PIL import Image
            with Image.open(path) as image:
                return image.info.get('Software') == SOFTWARE.format(command=command)
        with open(path, encoding='utf-8', errors='replace') as f:
            return text_mark(command) in f.read()
    except OSError:
        return False


def replace_problem(path, command, output_name):
    """Why ``command`` may not write ``path`` (``output_name``, e.g. ``--out table.md``),
    or None: a folder is there, or a file without its mark (the user's)."""
    if os.path.isdir(path):
        return f'{output_name} is a folder; give the file to write'
    if os.path.lexists(path) and not written_by(path, command):
        return (f'{output_name} already exists and was not written by {command}; it is never replaced: '
                'choose another name or move it away')
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f'{output_name}: the folder {parent} does not exist'
    if not os.access(parent, os.W_OK | os.X_OK):
        return f'{output_name}: {parent} is not writable'
    return None


def check_report_paths(command, inputs, outputs):
    """Raise InferenceError, before any work, for report files (``{'--out': path, ...}``,
    None entries ignored) that overlap an input or would replace a file ``command`` did
    not write."""
    from basicsr_sgenet.integration.errors import InferenceError
    for flag, path in outputs.items():
        if not path:
            continue
        problem = overlap_problem(path, inputs, f'{flag} {path}') or replace_problem(path, command, f'{flag} {path}')
        if problem:
            raise InferenceError(problem)


def write_report(path, text, command):
    """Write the Markdown ``text`` to ``path`` with ``command``'s mark, atomically;
    InferenceError naming ``path`` when it cannot be written (a full disk)."""
    from basicsr_sgenet.integration.atomic_files import atomic_write
    from basicsr_sgenet.integration.errors import InferenceError
    try:
        with atomic_write(path, 'w') as f:
            f.write(text.rstrip('\n') + '\n\n' + text_mark(command) + '\n')
    except OSError as err:
        raise InferenceError(f'Cannot write {path} ({err.strerror or err}); nothing was written there') from None
