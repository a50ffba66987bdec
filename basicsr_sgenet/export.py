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
``--overwrite``.

Exporter: PyTorch's TorchScript-based one (``dynamo=False``). It exports all six archs of
the plugin with dynamic batch/height/width in well under a second at test widths; the
``torch.export``-based exporter took 6-27 s for the same and, traced at batch 1,
specialised Restormer's batch to 1.

Needs the ``onnx`` extra (``pip install -e .[onnx]``: onnx, onnxruntime). Exit status 0
on success, 2 for bad arguments, a missing extra or a failed check (one ``error:`` line).
"""
import argparse
import io
import json
import os
import sys
import tempfile
import warnings

if __name__ == '__main__' and not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from basicsr_sgenet.archs.arch_util import final_image  # noqa: E402
from basicsr_sgenet.errors import InferenceError, first_line, status_or_user_error  # noqa: E402
from basicsr_sgenet.inference.network import build_network, size_multiple  # noqa: E402
from basicsr_sgenet.inference.onnx_backend import (  # noqa: E402
    INPUT_NAME, METADATA_PREFIX, OUTPUT_NAME, import_onnx_packages, ort_session)
from basicsr_sgenet.output_folders import output_folder_problem  # noqa: E402
from basicsr_sgenet.profiling import parse_size  # noqa: E402
from basicsr_sgenet.weights import load_weights  # noqa: E402

DEFAULT_OPSET = 17  # LayerNormalization and everything the archs use; ONNX Runtime >= 1.14
DEFAULT_TOLERANCE = 1e-4  # max |ONNX Runtime - PyTorch| on [0, 1] images: 0.03 of an 8-bit level
DEFAULT_TRACE_SIZE = '64x64'
DEFAULT_CHECK_SIZE = '75x53'  # odd and off every arch's size grid: the padding is exercised
DYNAMIC_AXES = {0: 'batch', 2: 'height', 3: 'width'}


class RestoredImage(nn.Module):
    """The network with its output reduced to the restored image (a dict or list of
    images in some archs), so every export has one output."""

    def __init__(self, network):
        super().__init__()
        self.network = network

    def forward(self, image):
        return final_image(self.network(image))


def size_dependent_layers(network):
    """Names of layers whose computation branches on the input size in Python, which a
    trace would freeze at the traced size: NAFNet's TLC local means."""
    return [name for name, module in network.named_modules()
            if type(module).__name__ == 'ChannelMean' and getattr(module, 'window', None) is not None]


def export_to_onnx(network, trace_size=(64, 64), opset=DEFAULT_OPSET, metadata=None):
    """ONNX ModelProto of ``network`` (eval mode, fp32, CPU) with dynamic batch, height
    and width, ``metadata`` (str -> str) stored in its ``metadata_props``; checked by
    ``onnx.checker`` with shape inference. InferenceError for what cannot be exported."""
    onnx, _ = import_onnx_packages('ONNX export')
    frozen = size_dependent_layers(network)
    if frozen:
        raise InferenceError(f'{type(network).__name__} cannot be exported for every input size: '
                             f'{", ".join(frozen[:3])}{" ..." if len(frozen) > 3 else ""} choose their computation '
                             'from the input size in Python (NAFNet tlc_train_size); export without tlc_train_size')
    wrapped = RestoredImage(network).eval().to('cpu', torch.float32)
    example = torch.rand(1, 3, *trace_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # TracerWarnings come from the archs' input checks (constant for valid input) and
        # the DeprecationWarnings from choosing this exporter on purpose (module docstring).
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            torch.onnx.export(wrapped, (example,), buffer, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: DYNAMIC_AXES, OUTPUT_NAME: DYNAMIC_AXES})
        except Exception as err:  # noqa: BLE001  (the exporter raises many types for unsupported ops)
            raise InferenceError(f'ONNX export of {type(network).__name__} at opset {opset} failed: '
                                 f'{first_line(err)}') from None
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=METADATA_PREFIX + key, value=str(value))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise InferenceError(f'The exported ONNX graph is invalid: {first_line(err)}') from None
    return model


def parity_difference(network, onnx_path, size, batch=2, seed=0):
    """Max |ONNX Runtime - PyTorch| over a random ``batch x 3 x size`` image, both fp32
    on the CPU, ONNX Runtime with every graph optimisation on (as the deblur CLI runs it)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, *size, generator=generator)
    with torch.inference_mode():
        expected = final_image(network.eval()(image)).float().numpy()
    session = ort_session(onnx_path)
    actual = session.run(None, {INPUT_NAME: image.numpy()})[0]
    if actual.shape != expected.shape:
        raise InferenceError(f'ONNX Runtime returned shape {actual.shape} for input {tuple(image.shape)}, PyTorch '
                             f'{expected.shape}')
    return float(np.abs(actual - expected).max())


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


def output_path_problem(path, overwrite):
    """Why ``path`` cannot be written (before any work), or None."""
    if os.path.isdir(path):
        return f'-o {path} is a folder; give the .onnx file to write'
    if os.path.lexists(path) and not overwrite:
        return f'-o {path} already exists; pass --overwrite to replace it'
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f'-o {path}: the folder {parent} does not exist'
    problem = output_folder_problem(parent)
    return f'-o {path}: {problem}' if problem else None


def export_cli(args):
    """Run the export; returns the exit status. Raises UserError for bad set-ups."""
    from basicsr_sgenet.deblur import network_spec_from_args

    import_onnx_packages('ONNX export')  # before the (slow) network build
    problem = output_path_problem(args.output, args.overwrite)
    if problem:
        raise InferenceError(problem)
    if args.tolerance <= 0:
        raise InferenceError(f'--tolerance must be > 0, got {args.tolerance}')
    trace_size = parse_size(args.trace_size, '--trace-size')
    check_size = parse_size(args.check_size, '--check-size')
    spec = network_spec_from_args(args)

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
        network = build_network(spec)
        load_weights(network, spec.weights, spec.param_key, network_description=spec.describe())
        network = network.eval()
        metadata = {'arch': spec.arch, 'arch_args': json.dumps(spec.kwargs), 'size_multiple': size_multiple(network),
                    'weights': os.path.basename(spec.weights.partition('#')[0]), 'torch': torch.__version__}
        model = export_to_onnx(network, trace_size, args.opset, metadata)
        with open(temporary, 'wb') as f:
            f.write(model.SerializeToString())
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
