"""Export a trained SGENet (or any registered 1x arch) to ONNX, checked against PyTorch.

    python -m basicsr_sgenet.export --opt options/test_SGENet_GoPro.yml --weights net_g.pth -o sgenet.onnx
    python -m basicsr_sgenet.export --arch NAFNet --arch-args '{"width": 32}' --weights nafnet.pth -o nafnet.onnx

The network is chosen exactly as in the deblur CLI (``--opt`` or ``--arch``/``--arch-args``,
``--weights``, ``--param-key``). The file takes one ``image`` input ``(N, 3, H, W)``,
float32 RGB in [0, 1], with dynamic batch, height and width, and returns ``restored`` of
the same shape: the arch pads to its size multiple and crops back inside the graph
(``archs/arch_util.pad_to_multiple`` builds the padding from tensor operations, so the
traced graph pads correctly at every size). Run it with
``python -m basicsr_sgenet.deblur --backend onnxruntime --model sgenet.onnx``.

Before the file is written it is checked twice: ``onnx.checker`` (full check, with shape
inference) and a parity run, ONNX Runtime against PyTorch on a random image of another
size than the one traced (odd by default, batch 2), so a graph that baked in a size fails
here instead of in use. The maximum difference is printed; above ``--tolerance`` the
export fails and nothing is written. An existing ``-o`` file is replaced only with
``--overwrite``, and only if it is an earlier export (an ONNX file carrying this
plugin's metadata): the weights, the option file or any other file is never replaced,
and ``-o`` may not be the weights or the option file. A full disk or Ctrl-C leaves no
``-o`` file (exit status 2 or 130).

The exporter and the parity check live in ``inference/onnx_export.py``.

Needs the ``onnx`` extra (``pip install -e .[onnx]``: onnx, onnxruntime). Exit status 0
on success, 2 for bad arguments, a missing extra or a failed check (one ``error:`` line).
"""
import argparse
import json
import os
import sys
import tempfile

if __name__ == '__main__' and not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from basicsr_sgenet.inference.network import load_network, network_spec_from_args, size_multiple  # noqa: E402
from basicsr_sgenet.inference.onnx_model import METADATA_PREFIX, import_onnx_packages  # noqa: E402
from basicsr_sgenet.inference.onnx_export import (  # noqa: E402
    DEFAULT_OPSET, DEFAULT_TOLERANCE, export_to_onnx, parity_difference)
from basicsr_sgenet.integration.errors import InferenceError, Interrupted, status_or_user_error  # noqa: E402
from basicsr_sgenet.integration.output_folders import output_folder_problem  # noqa: E402
from basicsr_sgenet.integration.own_outputs import overlap_problem  # noqa: E402
from basicsr_sgenet.inference.sizes import parse_size  # noqa: E402

DEFAULT_TRACE_SIZE = '64x64'
DEFAULT_CHECK_SIZE = '75x53'  # odd and off every arch's size grid: the padding is exercised

def build_parser():
    parser = argparse.ArgumentParser(prog='python -m basicsr_sgenet.export',
                                     description='Export a network to ONNX (dynamic batch/height/width), checked '
                                     'against PyTorch with ONNX Runtime.')
    parser.add_argument('-o', '--output', required=True, help='the .onnx file to write')
    parser.add_argument('--weights', help='trained weights (.pth): a BasicSR checkpoint or a bare state dict; a '
                        'file or an https:// URL (downloaded once; optional #sha256=<hex> pin)')
    parser.add_argument('--param-key', help='checkpoint entry to load (default: params_ema, else params)')
    parser.add_argument('--opt', help='BasicSR option file whose network_g (and path.pretrain_network_g) to use')
    parser.add_argument('--arch', default=None, help='registered arch name (default SGENet)')
    parser.add_argument('--arch-args', default=None, help='JSON keyword arguments of the arch (default: the '
                        'paper configuration)')
    parser.add_argument('--overwrite', action='store_true', help='replace the -o file if it exists')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET, help=f'ONNX opset (default {DEFAULT_OPSET})')
    parser.add_argument('--trace-size', default=DEFAULT_TRACE_SIZE,
                        help=f'HEIGHTxWIDTH of the example traced (default {DEFAULT_TRACE_SIZE}); the file '
                        'accepts any size')
    parser.add_argument('--check-size', default=DEFAULT_CHECK_SIZE,
                        help=f'HEIGHTxWIDTH of the random image of the parity check (default {DEFAULT_CHECK_SIZE})')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help=f'largest accepted |ONNX Runtime - PyTorch| on [0, 1] images (default '
                        f'{DEFAULT_TOLERANCE:g})')
    return parser


def is_earlier_export(path):
    """Whether ``path`` is an ONNX file this command wrote (its metadata carries the
    plugin's keys): the only kind of file ``--overwrite`` replaces."""
    try:
        import onnx
        model = onnx.load(path, load_external_data=False)
    except Exception:  # noqa: BLE001  (anything that does not parse as ONNX is not ours)
        return False
    return any(prop.key.startswith(METADATA_PREFIX) for prop in model.metadata_props)


def output_path_problem(path, overwrite):
    """Why ``path`` cannot be written (before any work), or None."""
    if os.path.isdir(path):
        return f'-o {path} is a folder; give the .onnx file to write'
    if os.path.lexists(path) and not is_earlier_export(path):
        return (f'-o {path} already exists and is not an ONNX file written by this export; it is never replaced: '
                'choose another name or move it away')
    if os.path.lexists(path) and not overwrite:
        return f'-o {path} already exists; pass --overwrite to replace it'
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f'-o {path}: the folder {parent} does not exist'
    problem = output_folder_problem(parent)
    return f'-o {path}: {problem}' if problem else None


def export_cli(args):
    """Run the export; returns the exit status. Raises UserError for bad set-ups."""
    import_onnx_packages('ONNX export')  # before the (slow) network build
    problem = output_path_problem(args.output, args.overwrite)
    if problem:
        raise InferenceError(problem)
    if args.tolerance <= 0:
        raise InferenceError(f'--tolerance must be > 0, got {args.tolerance}')
    trace_size = parse_size(args.trace_size, '--trace-size')
    check_size = parse_size(args.check_size, '--check-size')
    spec = network_spec_from_args(args)
    problem = overlap_problem(args.output, [spec.weights, args.opt], f'-o {args.output}')
    if problem:
        raise InferenceError(problem)

    # The temporary file is created before the (slow) build and export: a folder that
    # refuses files (read-only or special file systems, which os.access cannot tell) is an
    # error before any work, and the result replaces -o only once every check has passed.
    folder = os.path.dirname(os.path.abspath(args.output))
    try:
        handle, temporary = tempfile.mkstemp(prefix='.export-', suffix='.onnx', dir=folder)
    except OSError as err:
        raise InferenceError(f'-o {args.output} cannot be written ({err.strerror})') from None
    os.close(handle)
    try:
        network = load_network(spec)
        metadata = {'arch': spec.arch, 'arch_args': json.dumps(spec.kwargs), 'size_multiple': size_multiple(network),
                    'weights': os.path.basename(spec.weights.partition('#')[0]), 'torch': torch.__version__}
        model = export_to_onnx(network, trace_size, args.opset, metadata)
        try:
            with open(temporary, 'wb') as f:
                f.write(model.SerializeToString())
        except OSError as err:  # a full disk
            raise InferenceError(f'-o {args.output} cannot be written ({err.strerror or err}); nothing was '
                                 'written') from None
        difference = parity_difference(network, temporary, check_size)
        print(f'Parity: max |ONNX Runtime - PyTorch| = {difference:.2e} on a random 2x3x{check_size[0]}x'
              f'{check_size[1]} image (tolerance {args.tolerance:g})')
        if not difference <= args.tolerance:  # also catches NaN
            raise InferenceError(f'ONNX Runtime differs from PyTorch by {difference:.3g} (> --tolerance '
                                 f'{args.tolerance:g}) on a {check_size[0]}x{check_size[1]} image; {args.output} '
                                 'was not written')
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary file only
        os.replace(temporary, args.output)
    except KeyboardInterrupt:
        raise Interrupted(f'{args.output} was not written') from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    print(f'Exported {spec.describe()} to {args.output} (opset {args.opset}; dynamic batch, height and width; '
          f'onnx.checker passed)')
    return 0


def main(argv=None):
    return status_or_user_error(export_cli, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
