"""Exporting a network to ONNX and checking the file against PyTorch: what
``python -m basicsr_sgenet.export`` and the benchmark's ONNX rows share.

Exporter: PyTorch's TorchScript-based one (``dynamo=False``). It exports the plugin's archs
with dynamic batch/height/width in well under a second at test widths, except FFTformer,
whose FFTs (``aten::fft_rfft2``) it cannot export: that fails with one line naming the op. The
``torch.export``-based exporter took 6-27 s for the same and, traced at batch 1,
specialised Restormer's batch to 1.
"""
import contextlib
import io
import os
import re
import sys
import warnings

import numpy as np
import torch
from torch import nn

from basicsr_sgenet.archs.arch_util import final_image
from basicsr_sgenet.inference.backends.onnxruntime_backend import ort_session
from basicsr_sgenet.inference.onnx_model import INPUT_NAME, METADATA_PREFIX, OUTPUT_NAME, import_onnx_packages
from basicsr_sgenet.integration.errors import InferenceError, first_line

DEFAULT_OPSET = 17  # LayerNormalization and everything the archs use; ONNX Runtime >= 1.14
DEFAULT_TOLERANCE = 1e-4  # max |ONNX Runtime - PyTorch| on [0, 1] images: 0.03 of an 8-bit level
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
    trace would freeze at the traced size: the TLC local means of NAFNet and MLWNet."""
    return [name for name, module in network.named_modules()
            if type(module).__name__ == 'ChannelMean' and getattr(module, 'window', None) is not None]


@contextlib.contextmanager
def native_stdout_discarded():
    """Discard what native code writes to the process's stdout (file descriptor 1) inside
    the block. PyTorch's exporter dumps the whole TorchScript graph there (hundreds of
    lines) when an op has no ONNX equivalent (its ONNX log is always switched on during
    export, torch 2.14); the error raised says what matters."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, 'wb') as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def export_to_onnx(network, trace_size=(64, 64), opset=DEFAULT_OPSET, metadata=None):
    """ONNX ModelProto of ``network`` (eval mode, fp32, CPU) with dynamic batch, height
    and width, ``metadata`` (str -> str) stored in its ``metadata_props``; checked by
    ``onnx.checker`` with shape inference. InferenceError for what cannot be exported."""
    onnx, _ = import_onnx_packages('ONNX export')
    frozen = size_dependent_layers(network)
    if frozen:
        raise InferenceError(f'{type(network).__name__} cannot be exported for every input size: '
                             f'{", ".join(frozen[:3])}{" ..." if len(frozen) > 3 else ""} choose their computation '
                             'from the input size in Python (tlc_train_size of NAFNet, MLWNet); export without '
                             'tlc_train_size')
    wrapped = RestoredImage(network).eval().to('cpu', torch.float32)
    example = torch.rand(1, 3, *trace_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), native_stdout_discarded():
        # TracerWarnings come from the archs' input checks (constant for valid input) and
        # the DeprecationWarnings from choosing this exporter on purpose (module docstring).
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            torch.onnx.export(wrapped, (example,), buffer, dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: DYNAMIC_AXES, OUTPUT_NAME: DYNAMIC_AXES})
        except Exception as err:  # noqa: BLE001  (the exporter raises many types for unsupported ops)
            # An op without an ONNX equivalent (FFTformer's aten::fft_rfft2): named first, so
            # shortened notes (the benchmark's table) keep it.
            unsupported = re.search(r"Exporting the operator '([^']+)' to ONNX opset version \d+ is not supported",
                                    str(err))
            if unsupported:
                raise InferenceError(f'{type(network).__name__} uses {unsupported.group(1)}, which PyTorch\'s ONNX '
                                     f'exporter cannot export (opset {opset})') from None
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
