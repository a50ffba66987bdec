"""What computes the pixels: PyTorch (with a precision and memory format), or ONNX Runtime
/ OpenVINO on an exported model, and the automatic choice per machine.

Each backend is one file here, ``<name>_backend.py``, holding one ``Backend`` subclass
decorated with ``@register``; files are imported when this package is (BasicSR's
auto-import convention), so a new backend is one new file: the deblur CLI's
``--backend`` choices, its planning and restorer, and the benchmark's configurations all
come from this registry.

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

from basicsr_sgenet._autoimport import import_modules_with_suffix
from basicsr_sgenet.integration import precision as precisions
from basicsr_sgenet.integration.errors import InferenceError

PRECISION_CHOICES = ('auto', 'fp32', 'bf16', 'fp16')
# Options that describe a PyTorch network; an exported model carries its own.
NETWORK_OPTIONS = (('weights', '--weights'), ('opt', '--opt'), ('arch', '--arch'), ('arch_args', '--arch-args'),
                   ('param_key', '--param-key'), ('compile', '--compile'))
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
        text = f'{get(self.backend).label}, ' + ', '.join(settings) + f' on {self.device}'
        return text + (f' ({self.reason})' if self.reason else '')


class Backend:
    """One way of computing the pixels. Subclasses set the class attributes and implement
    ``plan`` and ``restorer``; the benchmark methods have working defaults only where a
    backend can share them."""
    name = ''                 # --backend NAME
    label = ''                # for people: 'ONNX Runtime'
    rank = 0                  # order of listing, and of preference under --backend auto
    takes_model = False       # runs an exported ONNX file (--model) rather than weights
    benchmark_modes = ()      # the benchmark's --backends values this backend runs

    def missing_package(self):
        """A sentence naming what to install if this backend's packages are missing, else None."""
        return None

    def plan(self, args, device):
        """The Plan for the CLI's arguments; InferenceError for settings that cannot work."""
        raise NotImplementedError

    def restorer(self, plan, spec):
        """(Restorer, size multiple) for ``plan`` (``spec``: the network, for weight-based backends)."""
        raise NotImplementedError

    def benchmark_problem(self, mode, precision, device):
        """Why the benchmark does not run ``precision`` in ``mode`` on ``device``, or None."""
        return None

    def benchmark_runner(self, mode, network, precision, device, onnx_path=None, threads=0):
        """A function (1, 3, h, w) float32 tensor -> restored image, for the benchmark."""
        raise NotImplementedError


REGISTRY = {}


def register(backend_class):
    REGISTRY[backend_class.name] = backend_class()
    return backend_class


def get(name):
    return REGISTRY[name]


def ordered():
    return sorted(REGISTRY.values(), key=lambda backend: backend.rank)


def auto_pytorch_settings(device):
    """(precision, channels_last, reason): the fastest safe PyTorch path on ``device``."""
    if device.type != 'cpu':
        return 'fp32', False, 'the CUDA default: no GPU measurement yet'
    if precisions.cpu_has_native_bf16():  # looked up at call time: tests simulate CPUs
        return 'bf16', True, BF16_REASON
    return 'fp32', True, NO_BF16_REASON


def auto_precision(requested):
    """(precision, reason) for backends whose only choice is bf16 where native, else fp32."""
    if requested != 'auto':
        return requested, ''
    return ('bf16', BF16_REASON) if precisions.cpu_has_native_bf16() else ('fp32', NO_BF16_REASON)


def cpu_for(backend, requested, device):
    """The CPU for a CPU-only backend: ``--device auto`` becomes the CPU, CUDA is refused."""
    if device.type != 'cpu' and requested != 'auto':
        raise InferenceError(f'--device {requested}: --backend {backend} runs on the CPU; use --device cpu (or '
                             '--backend onnxruntime with onnxruntime-gpu, or pytorch)')
    return torch.device('cpu')


def automatic_backend(args):
    """--backend auto: the preferred installed backend for what was given (an exported
    model or weights); if none is installed, the last in preference (the baseline of its
    kind: ONNX Runtime for models), which then names the extra to install."""
    candidates = [backend for backend in ordered() if backend.takes_model == bool(args.model)]
    return next((backend for backend in candidates if backend.missing_package() is None), candidates[-1])


def plan_from_args(args, device):
    """The Plan for the CLI's ``--backend/--model/--precision/--channels-last/--compile``
    on ``device`` (resolved from ``args.device``); InferenceError naming the argument for
    combinations that cannot work, checked before anything slow happens."""
    backend = automatic_backend(args) if args.backend == 'auto' else get(args.backend)
    if not backend.takes_model:
        if args.model:
            model_backends = '/'.join(other.name for other in ordered() if other.takes_model)
            raise InferenceError(f'--model {args.model} is an ONNX model for --backend {model_backends}; the '
                                 f'{backend.label} backend takes --weights (and --opt or --arch)')
        return backend.plan(args, device)
    if not args.model:
        raise InferenceError(f'--backend {backend.name} needs --model FILE.onnx (python -m basicsr_sgenet.export '
                             'writes one)')
    given = [flag for name, flag in NETWORK_OPTIONS if getattr(args, name, None)]
    if args.channels_last is not None:
        given.append('--channels-last' if args.channels_last else '--no-channels-last')
    if given:
        weight_backends = '/'.join(other.label for other in ordered() if not other.takes_model)
        raise InferenceError(f'{", ".join(given)} only apply to the {weight_backends} backend; the ONNX model '
                             f'{args.model} carries its network and weights')
    plan = backend.plan(args, device)
    if not os.path.isfile(args.model):
        raise InferenceError(f'--model {args.model} does not exist')
    return plan


def build_restorer(plan, spec):
    """(Restorer, size multiple) for ``plan``: ``spec`` (a NetworkSpec with weights) is
    built and loaded for weight-based backends; model-based ones read ``plan.model``."""
    return get(plan.backend).restorer(plan, spec)


def benchmark_backend(mode):
    """The backend that runs the benchmark's ``mode``."""
    return next(backend for backend in ordered() if mode in backend.benchmark_modes)


import_modules_with_suffix(__name__, os.path.dirname(os.path.abspath(__file__)), '_backend')
BACKENDS = ('auto',) + tuple(backend.name for backend in ordered())  # the CLI's --backend choices
BENCHMARK_MODES = tuple(mode for backend in ordered() for mode in backend.benchmark_modes)
MODEL_MODES = tuple(mode for backend in ordered() if backend.takes_model for mode in backend.benchmark_modes)
