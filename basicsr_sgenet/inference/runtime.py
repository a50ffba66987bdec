"""Where and how a network runs: device, precision, memory format, compilation.

Shared by the deblur CLI and ``scripts/benchmark.py``, so a benchmarked configuration is
exactly the one users run. Precisions and what each needs: ``basicsr_sgenet/integration/precision.py``.
"""
import numpy as np
import torch

from basicsr_sgenet.archs.arch_util import final_image
from basicsr_sgenet.integration.errors import InferenceError
from basicsr_sgenet.inference.tiling import tiled_forward
from basicsr_sgenet.integration.precision import PRECISIONS, autocast, precision_problem


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


def check_precision(precision, device, argument='--precision'):
    """Raise InferenceError, naming ``argument``, unless ``precision`` can run on ``device``."""
    if precision not in PRECISIONS:
        raise InferenceError(f'{argument} {precision} is not one of {", ".join(PRECISIONS)}')
    problem = precision_problem(precision, device)
    if problem:
        raise InferenceError(f'{argument} {precision} on {device}: {problem}')


def prepare_network(network, device, channels_last=False, compile_network=False):
    """Eval mode, on ``device``, optionally channels-last and ``torch.compile``d."""
    network = network.eval().to(device)
    if channels_last:
        # 4-D tensors (convolution weights) only: Module.to(memory_format=channels_last) also
        # converts 5-D ones and fails on them (FFTformer's per-patch spectrum filters).
        network = network._apply(lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t)
    if compile_network:
        network = torch.compile(network)
    return network


class Restorer:
    """Restores RGB float images, whole or in tiles, with whatever computes ``forward``
    (PyTorch here, ONNX Runtime or OpenVINO in ``backends/``): the CLI's tiling, IO
    and progress bars are the same for every backend."""

    device = torch.device('cpu')

    def forward(self, batch):
        """(N, 3, h, w) float tensor (any device) -> (N, 3, h, w) float32 on the CPU."""
        raise NotImplementedError

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


class ImageRestorer(Restorer):
    """Runs a prepared PyTorch network."""

    backend = 'pytorch'

    def __init__(self, network, device, precision='fp32', channels_last=False):
        check_precision(precision, device)
        self.network = network
        self.device = device
        self.precision = precision
        self.channels_last = channels_last

    @torch.inference_mode()
    def forward(self, batch):
        batch = batch.to(self.device, torch.float32)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            output = final_image(self.network(batch))
        return output.float().cpu()
