"""The command-line options every ``scripts/prepare_*.py`` shares: how training frames are
cut into sub-images, and how the output is written. One place, so the four scripts take
them alike."""
from basicsr_sgenet.data.preparation.outputs import FORMATS
from basicsr_sgenet.data.preparation.recipes import DEFAULT_GRID, default_workers


def add_subimage_arguments(parser, crop_size=DEFAULT_GRID.crop_size):
    """--crop-size, --step, --thresh-size (``crop_size`` 0: full training frames by default)."""
    parser.add_argument('--crop-size', type=int, default=crop_size,
                        help='training sub-image size; 0 stores full training frames instead')
    parser.add_argument('--step', type=int, default=DEFAULT_GRID.step, help='stride between training sub-images')
    parser.add_argument('--thresh-size', type=int, default=DEFAULT_GRID.thresh_size,
                        help='a leftover border up to this many pixels is dropped instead of getting its own '
                             'sub-image flush with the frame edge')


def add_output_arguments(parser):
    """--format, --compress-level, --workers, --overwrite."""
    parser.add_argument('--format', default='lmdb', choices=FORMATS,
                        help="'folder': <split>/{blur,sharp}/<key>.png plus meta_info.txt, for BasicSR's disk backend")
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression 0-9 (1: fast to decode)')
    parser.add_argument('--workers', type=int, default=default_workers(), help='processes decoding and encoding')
    parser.add_argument('--overwrite', action='store_true',
                        help='rebuild the requested splits even if they exist (only ones this tool made), replacing '
                             'them when done')


def subimage_grid(args):
    """The SubimageGrid the sub-image options ask for (None: full training frames)."""
    from basicsr_sgenet.data.preparation.subimages import SubimageGrid
    return None if args.crop_size == 0 else SubimageGrid(args.crop_size, args.step, args.thresh_size)


def run_preparation(prepare, args, unit='split'):
    """Run ``prepare(args)`` as a command: a mistake or a fault is one ``error:`` line (exit
    status 2); Ctrl-C is one line saying what is left (exit status 130). ``unit``: what one
    complete output is called in that line ('split', or 'dataset' for HIDE)."""
    from basicsr_sgenet.integration.errors import exit_on_user_error
    exit_on_user_error(_interruptible, prepare, args, unit)


def _interruptible(prepare, args, unit):
    from basicsr_sgenet.integration.errors import Interrupted
    try:
        return prepare(args)
    except KeyboardInterrupt:
        finished = 'finished splits are' if unit == 'split' else f'finished {unit}s are'
        raise Interrupted(f'the {unit} being written was discarded; {finished} kept (no half-written '
                          'dataset is left under its final name)') from None
