"""Finding blur/sharp image pairs in the GoPro and HIDE folder layouts, and in the
list files RealBlur and RSBlur define their splits with.

Scanning only looks at names: it never opens an image (``images.py`` does that). Each
pair gets the key it will have in the prepared dataset; keys must be usable as LMDB keys
and in BasicSR's ``meta_info.txt``, whose parser splits a line at the first ``.`` and at
spaces, so keys are checked here, before anything is written.
"""
import os
import re
from dataclasses import dataclass

from basicsr_sgenet.integration.errors import PreparationError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')

GOPRO_LAYOUT = '<root>/train|test/<sequence>/{blur,blur_gamma,sharp}/*.png'
HIDE_LAYOUT = '<root>/test/{test-close-ups,test-long-shot}/*.png with the sharp images in <root>/GT/ (same names)'
HIDE_SUBSETS = ('test-close-ups', 'test-long-shot')
REALBLUR_LAYOUT = ('<root>/RealBlur-{J,R}_..._itensity_ref/<scene>/{gt,blur}/*.png with the list files '
                   'RealBlur_{J,R}_{train,test}_list.txt (lines "<gt path> <blur path>", relative to <root>)')
RSBLUR_LAYOUT = ('<root>/RSBlur/<day>/<scene>/{gt/gt_sharp.png,real_blur/real_blur.png} with the list files '
                 'RSBlur_real_{train,val,test}.txt (lines "<gt path> <blur path>", relative to <root>)')

# ASCII letters, digits, '_', '-' only: no '.', no spaces (meta_info.txt), ASCII (LMDB keys).
_VALID_KEY = re.compile(r'^[A-Za-z0-9_\-]+$')
_MAX_REPORTED = 10


@dataclass(frozen=True)
class ImagePair:
    key: str
    blur_path: str
    sharp_path: str


def _summarise(problems):
    """Up to _MAX_REPORTED problems, one a line, and how many more there were."""
    lines = [f'  {problem}' for problem in problems[:_MAX_REPORTED]]
    if len(problems) > _MAX_REPORTED:
        lines.append(f'  ... and {len(problems) - _MAX_REPORTED} more')
    return '\n'.join(lines)


def raise_if_problems(problems, headline):
    if problems:
        raise PreparationError(f'{headline}:\n{_summarise(problems)}')


def list_images(folder):
    """Image file names in ``folder`` (not recursive, hidden files skipped), sorted."""
    return sorted(name for name in os.listdir(folder)
                  if not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(folder, name)))


def _require_folder(path, what, layout):
    if not os.path.isdir(path):
        raise PreparationError(f'{what} {path} does not exist or is not a folder (expected layout: {layout}).')


def check_keys(pairs):
    """Every key valid and unique; raises PreparationError naming the offending files."""
    problems = []
    for pair in pairs:
        if not _VALID_KEY.match(pair.key):
            problems.append(f'{pair.blur_path}: its key "{pair.key}" may only contain ASCII letters, digits, '
                            '"_" and "-" (BasicSR\'s meta_info.txt splits names at "." and spaces); rename the file')
    first_with_key = {}
    for pair in pairs:
        if pair.key in first_with_key:
            problems.append(f'{pair.blur_path} and {first_with_key[pair.key].blur_path} both get the key '
                            f'"{pair.key}"; rename one of them')
        else:
            first_with_key[pair.key] = pair
    raise_if_problems(problems, 'Some images cannot be given a dataset key')


def _match_names(blur_folder, sharp_folder):
    """Pairs of identical file names; raises naming every unpaired file."""
    blur_names, sharp_names = list_images(blur_folder), list_images(sharp_folder)
    problems = [f'{os.path.join(blur_folder, name)} has no sharp counterpart {os.path.join(sharp_folder, name)}'
                for name in sorted(set(blur_names) - set(sharp_names))]
    problems += [f'{os.path.join(sharp_folder, name)} has no blurred counterpart {os.path.join(blur_folder, name)}'
                 for name in sorted(set(sharp_names) - set(blur_names))]
    raise_if_problems(problems, f'{blur_folder} ({len(blur_names)} images) and {sharp_folder} '
                                f'({len(sharp_names)} images) do not pair up by file name')
    return blur_names


def scan_gopro_split(root, split, blur_folder='blur'):
    """Pairs of one GoPro split, keyed ``<sequence>_<frame>``, sorted by key."""
    _require_folder(root, 'GoPro root', GOPRO_LAYOUT)
    split_dir = os.path.join(root, split)
    _require_folder(split_dir, f'GoPro {split} folder', GOPRO_LAYOUT)
    sequences = sorted(name for name in os.listdir(split_dir)
                       if not name.startswith('.') and os.path.isdir(os.path.join(split_dir, name)))
    if not sequences:
        raise PreparationError(f'{split_dir} contains no sequence folders (expected layout: {GOPRO_LAYOUT}).')
    pairs = []
    for sequence in sequences:
        sequence_dir = os.path.join(split_dir, sequence)
        blur_dir, sharp_dir = os.path.join(sequence_dir, blur_folder), os.path.join(sequence_dir, 'sharp')
        for folder in (blur_dir, sharp_dir):
            if not os.path.isdir(folder):
                present = ', '.join(sorted(os.listdir(sequence_dir))) or 'nothing'
                raise PreparationError(f'{folder} does not exist (found: {present}). Each sequence needs '
                                       f'"{blur_folder}" and "sharp" folders (expected layout: {GOPRO_LAYOUT}).')
        names = _match_names(blur_dir, sharp_dir)
        if not names:
            raise PreparationError(f'{blur_dir} and {sharp_dir} contain no images.')
        pairs += [ImagePair(f'{sequence}_{os.path.splitext(name)[0]}', os.path.join(blur_dir, name),
                            os.path.join(sharp_dir, name)) for name in names]
    check_keys(pairs)
    return sorted(pairs, key=lambda pair: pair.key)


def scan_hide_subset(root, subset):
    """Pairs of one HIDE test subset, keyed by file stem, sorted by key."""
    _require_folder(root, 'HIDE root', HIDE_LAYOUT)
    blur_dir, sharp_dir = os.path.join(root, 'test', subset), os.path.join(root, 'GT')
    _require_folder(blur_dir, f'HIDE subset {subset}', HIDE_LAYOUT)
    _require_folder(sharp_dir, 'HIDE sharp (GT) folder', HIDE_LAYOUT)
    names = list_images(blur_dir)
    if not names:
        raise PreparationError(f'{blur_dir} contains no images.')
    # GT holds the sharp images of every subset, so only blurred images without a GT are errors.
    missing = [f'{os.path.join(blur_dir, name)} has no sharp counterpart {os.path.join(sharp_dir, name)}'
               for name in names if not os.path.isfile(os.path.join(sharp_dir, name))]
    raise_if_problems(missing, f'Some images in {blur_dir} have no sharp image in {sharp_dir}')
    pairs = [ImagePair(os.path.splitext(name)[0], os.path.join(blur_dir, name), os.path.join(sharp_dir, name))
             for name in names]
    check_keys(pairs)
    return sorted(pairs, key=lambda pair: pair.key)


def unused_hide_ground_truth(root, pairs):
    """GT images that no scanned pair uses (worth a note: a subset may be missing)."""
    used = {os.path.basename(pair.sharp_path) for pair in pairs}
    return [name for name in list_images(os.path.join(root, 'GT')) if name not in used]


def _read_list_lines(list_path, layout):
    if not os.path.isfile(list_path):
        raise PreparationError(f'List file {list_path} does not exist (expected layout: {layout}).')
    try:
        with open(list_path, encoding='utf-8') as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise PreparationError(f'Cannot read list file {list_path}: {getattr(err, "strerror", None) or err}.') from None


def scan_list_file(root, list_path, key_of, layout):
    """Pairs a list file names: each non-empty line ``<sharp path> <blur path>``, both
    relative to ``root`` (RealBlur's and RSBlur's format). ``key_of(sharp path as
    written)`` gives each pair's key. Raises naming the list file, line and image."""
    _require_folder(root, 'Dataset root', layout)
    lines = [(number, line.split()) for number, line in enumerate(_read_list_lines(list_path, layout), 1)
             if line.strip()]
    if not lines:
        raise PreparationError(f'List file {list_path} names no images (expected lines "<gt path> <blur path>").')
    malformed = [f'{list_path}, line {number}: expected "<gt path> <blur path>", got "{" ".join(fields)}"'
                 for number, fields in lines if len(fields) != 2 or any(os.path.isabs(p) for p in fields)]
    raise_if_problems(malformed, f'List file {list_path} has malformed lines')
    # A first folder that is not there means --input points at the wrong place: say that once.
    top = lines[0][1][0].replace('\\', '/').split('/')[0]
    if not os.path.isdir(os.path.join(root, top)):
        raise PreparationError(f'{os.path.join(root, top)}, which {list_path} names, does not exist: --input must be '
                               f'the folder holding {top} (expected layout: {layout}).')
    pairs, missing = [], []
    for number, (sharp, blur) in lines:
        sharp_path, blur_path = os.path.join(root, sharp), os.path.join(root, blur)
        missing += [f'{path} (named in {list_path}, line {number}) does not exist'
                    for path in (blur_path, sharp_path) if not os.path.isfile(path)]
        pairs.append(ImagePair(key_of(sharp), blur_path, sharp_path))
    raise_if_problems(missing, f'Some images named in {list_path} are missing')
    check_keys(pairs)
    return sorted(pairs, key=lambda pair: pair.key)


def _path_parts(path):
    return [part for part in path.replace('\\', '/').split('/') if part]


def realblur_key(sharp_path):
    """``.../scene230/gt/gt_7.png`` -> ``scene230_7``: the name RealBlur's own evaluation
    script expects of a restored image (``<scene>_<index>.png``)."""
    parts = _path_parts(sharp_path)
    stem = os.path.splitext(parts[-1])[0]
    return f'{parts[-3] if len(parts) >= 3 else ""}_{stem[3:] if stem.startswith("gt_") else stem}'.lstrip('_')


def rsblur_key(sharp_path):
    """``RSBlur/0001/000022/gt/gt_sharp.png`` -> ``0001_000022`` (day and scene)."""
    parts = _path_parts(sharp_path)
    return '_'.join(parts[-4:-2]) if len(parts) >= 4 else os.path.splitext(parts[-1])[0]
