"""What computes the pixels in the deblur CLI: PyTorch (with which precision and memory
format), or ONNX Runtime / OpenVINO on an exported model, and the automatic choice per
machine.

The automatic choice (``--backend auto --precision auto``, the defaults) follows the
CPU measurements in docs/benchmarks.md (paper-size SGENet and the five peers, 2 cores of
an AMD EPYC with AVX-512 BF16; speed-ups over eager fp32):

* Weights (``--weights``/``--opt``): PyTorch, channels-last, bf16 autocast where the CPU
  has native bf16 (AVX-512 BF16 or AMX; SGENet 2.3-2.6x), else fp32 (1.1-1.3x). bf16
  changed the output by at most ~1.5e-3 and PSNR by < 0.001 dB on trained weights.
  bf16 without native support is refused (``precision.precision_problem``: a reference
  path ~100-250x slower).
* An exported model (``--model``): OpenVINO if installed (bf16 where native: SGENet
  2.7-3.3x; else f32: 1.4x), else ONNX Runtime (fp32: 1.3-1.6x).
* CUDA: PyTorch fp32, contiguous (no GPU measurement yet; ``--precision bf16``/``fp16``
  and ``--channels-last`` remain available).
"""
import os
from dataclasses import dataclass
from typing import Optional

import torch

from basicsr_sgenet.integration import precision as precisions
from basicsr_sgenet.integration.errors import InferenceError
from basicsr_sgenet.inference.network import build_network, size_multiple
from basicsr_sgenet.inference.runtime import ImageRestorer, check_precision, prepare_network
from basicsr_sgenet.integration.weights import load_weights

BACKENDS = ('auto', 'pytorch', 'onnxruntime', 'openvino')
ONNX_BACKENDS = ('onnxruntime', 'openvino')
PRECISION_CHOICES = ('auto', 'fp32', 'bf16', 'fp16')
# Options that describe a PyTorch network; an ONNX model carries its own.
PYTORCH_ONLY_OPTIONS = (('weights', '--weights'), ('opt', '--opt'), ('arch', '--arch'), ('arch_args', '--arch-args'),
                        ('param_key', '--param-key'), ('compile', '--compile'))
BACKEND_NAMES = {'pytorch': 'PyTorch', 'onnxruntime': 'ONNX Runtime', 'openvino': 'OpenVINO'}
BF16_REASON = 'this CPU has native bf16: the fastest path measured, within 0.001 dB of fp32'
NO_BF16_REASON = 'this CPU has no native bf16, where bf16 would be ~100x slower'


@dataclass
class Plan:
    """The backend and settings one deblur run uses, and why (for the console)."""
    backend: str
    precision: str
    device: torch.device
    channels_last: bool = False
    compile: bool = False
    model: Optional[str] = None
    reason: str = ''

    def describe(self):
        settings = [self.precision] + (['channels-last'] if self.channels_last else []) + \
            (['torch.compile'] if self.compile else []) + ([self.model] if self.model else [])
        text = f'{BACKEND_NAMES[self.backend]}, ' + ', '.join(settings) + f' on {self.device}'
        return text + (f' ({self.reason})' if self.reason else '')


def auto_pytorch_settings(device):
    """(precision, channels_last, reason): the fastest safe PyTorch path on ``device``."""
    if device.type != 'cpu':
        return 'fp32', False, 'the CUDA default: no GPU measurement yet'
    if precisions.cpu_has_native_bf16():  # looked up at call time: tests simulate CPUs
        return 'bf16', True, BF16_REASON
    return 'fp32', True, NO_BF16_REASON


def openvino_installed():
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def plan_from_args(args, device):
    """The Plan for the CLI's ``--backend/--model/--precision/--channels-last/--compile``
    on ``device`` (resolved from ``args.device``); InferenceError naming the argument for
    combinations that cannot work, checked before anything slow happens."""
    backend = args.backend
    if backend == 'auto':
        backend = ('openvino' if openvino_installed() else 'onnxruntime') if args.model else 'pytorch'
    if backend == 'pytorch':
        return pytorch_plan(args, device)
    if not args.model:
        raise InferenceError(f'--backend {backend} needs --model FILE.onnx (python -m basicsr_sgenet.export '
                             'writes one)')
    given = [flag for name, flag in PYTORCH_ONLY_OPTIONS if getattr(args, name, None)]
    if args.channels_last is not None:
        given.append('--channels-last' if args.channels_last else '--no-channels-last')
    if given:
        raise InferenceError(f'{", ".join(given)} only apply to the PyTorch backend; the ONNX model {args.model} '
                             'carries its network and weights')
    from basicsr_sgenet.inference import onnx_backend
    if backend == 'openvino':
        onnx_backend.import_openvino()
        device = cpu_for(backend, args.device, device)
        precision, reason = args.precision, ''
        if precision == 'auto':
            precision, reason = ('bf16', BF16_REASON) if precisions.cpu_has_native_bf16() else ('fp32', NO_BF16_REASON)
        if precision == 'fp16':
            raise InferenceError('--precision fp16 is not available with --backend openvino (CPU): use fp32 or bf16')
        check_precision(precision, device)
    else:
        _, ort = onnx_backend.import_onnx_packages(f'--backend {backend}')
        if args.device == 'auto' and 'CUDAExecutionProvider' not in ort.get_available_providers():
            device = torch.device('cpu')  # a CPU-only onnxruntime on a machine with a GPU
        precision, reason = 'fp32', ''
        if args.precision not in ('auto', 'fp32'):
            raise InferenceError(f'--precision {args.precision} is not available with --backend onnxruntime: it runs '
                                 'the exported model in fp32 (--backend openvino or pytorch for bf16)')
    if not os.path.isfile(args.model):
        raise InferenceError(f'--model {args.model} does not exist')
    return Plan(backend, precision, device, model=args.model, reason=reason)


def pytorch_plan(args, device):
    if args.model:
        raise InferenceError(f'--model {args.model} is an ONNX model for --backend onnxruntime/openvino; the PyTorch '
                             'backend takes --weights (and --opt or --arch)')
    auto_precision, auto_channels_last, reason = auto_pytorch_settings(device)
    precision = auto_precision if args.precision == 'auto' else args.precision
    channels_last = auto_channels_last if args.channels_last is None else args.channels_last
    check_precision(precision, device)
    chosen_automatically = args.precision == 'auto' or args.channels_last is None
    return Plan('pytorch', precision, device, channels_last, args.compile,
                reason=reason if chosen_automatically else '')


def cpu_for(backend, requested, device):
    """The CPU for a CPU-only backend: ``--device auto`` becomes the CPU, CUDA is refused."""
    if device.type != 'cpu' and requested != 'auto':
        raise InferenceError(f'--device {requested}: --backend {backend} runs on the CPU; use --device cpu (or '
                             '--backend onnxruntime with onnxruntime-gpu, or pytorch)')
    return torch.device('cpu')


def build_restorer(plan, spec):
    """(Restorer, size multiple) for ``plan``: ``spec`` (a NetworkSpec with weights) is
    built and loaded for PyTorch; the ONNX backends read ``plan.model``."""
    if plan.backend == 'pytorch':
        network = build_network(spec)
        load_weights(network, spec.weights, spec.param_key, network_description=spec.describe())
        prepared = prepare_network(network, plan.device, plan.channels_last, plan.compile)
        return ImageRestorer(prepared, plan.device, plan.precision, plan.channels_last), size_multiple(network)
    from basicsr_sgenet.inference.onnx_backend import (OnnxRuntimeRestorer, OpenVinoRestorer, model_size_multiple,
                                                       read_metadata)
    multiple = model_size_multiple(read_metadata(plan.model))
    if plan.backend == 'openvino':
        return OpenVinoRestorer(plan.model, plan.precision), multiple
    return OnnxRuntimeRestorer(plan.model, plan.device), multiple
