"""Where and how a network runs: device, precision, memory format, compilation.

Shared by the deblur CLI and ``scripts/benchmark.py``, so a benchmarked configuration is
exactly the one users run.

Reduced precision uses autocast: weights stay fp32 and convolutions/matmuls run in
bf16/fp16, which is what ``torch.autocast`` considers safe. fp16 autocast is CUDA-only
here: CPU fp16 convolutions are slow or unsupported, so asking for it is an error rather
than a silent fallback.
"""
import contextlib

import numpy as np
import torch

from basicsr_sgenet.inference.errors import InferenceError
from basicsr_sgenet.inference.network import first_image
from basicsr_sgenet.inference.tiling import tiled_forward

PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def resolve_device(name):
    """'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> torch.device."""
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InferenceError(f'--device {name} is not a device; use auto, cpu, cuda or cuda:N') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise InferenceError(f'--device {name}: this PyTorch has no usable CUDA device; use --device cpu')
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InferenceError(f'--device {name}: only {torch.cuda.device_count()} CUDA device(s) present')
    elif device.type != 'cpu':
        raise InferenceError(f'--device {name} is not supported; use auto, cpu, cuda or cuda:N')
    return device


def check_precision(precision, device):
    """Raise InferenceError unless ``precision`` can run on ``device``."""
    if precision not in PRECISIONS:
        raise InferenceError(f'--precision {precision} is not one of {", ".join(PRECISIONS)}')
    if precision == 'fp16' and device.type != 'cuda':
        raise InferenceError('--precision fp16 needs a CUDA device; on the CPU use bf16 or fp32')
    if precision == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise InferenceError('--precision bf16: this GPU does not support bfloat16; use fp16 or fp32')


def autocast(device, precision):
    """Autocast context for ``precision`` (a no-op for fp32)."""
    if precision == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def prepare_network(network, device, channels_last=False, compile_network=False):
    """Eval mode, on ``device``, optionally channels-last and ``torch.compile``d."""
    network = network.eval().to(device)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    if compile_network:
        network = torch.compile(network)
    return network


class ImageRestorer:
    """Runs a prepared network on RGB float images, whole or in tiles."""

    def __init__(self, network, device, precision='fp32', channels_last=False):
        check_precision(precision, device)
        self.network = network
        self.device = device
        self.precision = precision
        self.channels_last = channels_last

    @torch.inference_mode()
    def forward(self, batch):
        """(1, 3, h, w) float tensor (any device) -> (1, 3, h, w) float32 on the CPU."""
        batch = batch.to(self.device, torch.float32)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            output = first_image(self.network(batch))
        return output.float().cpu()

    def restore(self, rgb, tile=0, overlap=0, multiple=1, on_tile=None):
        """H x W x 3 float array in [0, 1] -> restored H x W x 3 float32 array.

        ``tile`` 0 runs the whole image at once; otherwise see ``tiling.tiled_forward``.
        """
        batch = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        if tile:
            output = tiled_forward(self.forward, batch, tile, overlap, multiple, on_tile)
        else:
            output = self.forward(batch)
        return output[0].numpy().transpose(1, 2, 0)
