"""Cost of a network: parameters, multiply-accumulates, latency and peak memory.

Used by ``scripts/benchmark.py`` and ``scripts/compare.py``. What each number means:

* Params: all parameters of the module.
* MACs: ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 for one forward pass of a
  1 x 3 x H x W input. It counts matrix multiplications and convolutions (and attention
  kernels), not element-wise ops, pooling or interpolation, which is also what
  fvcore-style counters in papers mostly count. The pass runs on the ``meta`` device
  (shapes only, no compute), so 720p counts of large networks are instant; a network
  that cannot run on ``meta`` is counted by a real CPU forward pass instead.
* Latency: wall time of ``network(x)`` under ``torch.inference_mode()`` with the input
  already on the device, after warm-up runs (which also absorb ``torch.compile``), with
  ``torch.cuda.synchronize()`` before starting and before stopping the clock on CUDA,
  so asynchronous kernel launches are not mistaken for finished work. Median (and min)
  of the timed runs.
* Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` during one forward pass,
  weights and input included (tensors only, not the caching allocator's reserve or the
  CUDA context). On the CPU, the rise of the process's peak resident set size (Linux
  ``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident size just before
  the pass, after returning freed heap memory to the OS with ``malloc_trim``: the
  memory the forward pass itself needed (activations, workspaces), weights excluded.
  Elsewhere it is not measured.
"""
import contextlib
import copy
import ctypes
import gc
import importlib
import platform
import statistics
import time
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from basicsr_sgenet.archs.arch_util import final_image
from basicsr_sgenet.integration.errors import InferenceError, first_line
from basicsr_sgenet.inference.backends import ONNX_BACKENDS
from basicsr_sgenet.inference.network import build_network
from basicsr_sgenet.inference.runtime import prepare_network
from basicsr_sgenet.integration.precision import autocast, cpu_capability, precision_problem

MIB = 2**20


def cpu_model_name():
    """The CPU's model name as /proc/cpuinfo gives it (else what ``platform`` knows): every
    measurement the docs record names the machine it ran on."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def parse_size(text, argument='--size'):
    """'HEIGHTxWIDTH' -> (height, width), or InferenceError naming ``argument``."""
    try:
        height, width = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise InferenceError(f'{argument}: {text!r} is not HEIGHTxWIDTH (e.g. 720x1280)') from None
    if height < 1 or width < 1:
        raise InferenceError(f'{argument}: {text!r} must be positive')
    return height, width


def format_gmacs(macs):
    """MACs as GMACs with sensible precision: 5827, 414.3, 1.25, 0.0123."""
    gmacs = macs / 1e9
    if gmacs >= 1000:
        return f'{gmacs:.0f}'
    if gmacs >= 1:
        return f'{gmacs:.1f}' if gmacs >= 10 else f'{gmacs:.2f}'
    return f'{gmacs:.3g}'


def count_parameters(network):
    return sum(p.numel() for p in network.parameters())


def forward_macs(network, height, width, device='meta'):
    """``(total, per_module)`` MACs of one forward pass of a 1 x C x H x W input, where
    ``per_module`` maps each module path (``stage1_encoder.levels.0``) to the MACs counted
    inside it. Containers that are never called themselves (ModuleList) have no entry."""
    x = torch.zeros(1, getattr(network, 'in_channels', 3), height, width, device=device)
    counter = FlopCounterMode(display=False, depth=None)
    with counter, torch.no_grad():
        network(x)
    root = type(network).__name__
    per_module = {name[len(root) + 1:]: sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()
                  if name.startswith(root + '.')}
    return counter.get_total_flops() // 2, per_module


def build_on_meta(spec):
    """``spec``'s network with parameters on the ``meta`` device (shapes, no storage)."""
    try:
        with torch.device('meta'):
            return build_network(spec).eval()
    except Exception:  # noqa: BLE001  (any failure: retry the plain way, which re-raises real errors)
        # Constructors that read tensor values (``.item()``, ``.data =``) need real
        # tensors: build on the CPU, then drop the storage.
        return build_network(spec).eval().to('meta')


def _meta_forward_macs(network, height, width):
    """MACs of a forward pass on the meta device, or None if the forward needs real
    tensor values (data-dependent control flow, ``.item()``)."""
    try:
        return forward_macs(network, height, width, 'meta')[0]
    except Exception:  # noqa: BLE001  (any failure here means: count with real tensors instead)
        return None


def count_macs(spec, height, width, network=None):
    """(MACs, how) for one 1 x 3 x height x width forward pass of ``spec``'s network.

    ``network``: an already built meta-device copy to reuse. ``how`` is 'meta' when no
    compute ran, 'cpu' when a real forward pass was needed.
    """
    macs = _meta_forward_macs(build_on_meta(spec) if network is None else network, height, width)
    if macs is not None:
        return macs, 'meta'
    try:
        return forward_macs(build_network(spec).eval(), height, width, 'cpu')[0], 'cpu'
    except RuntimeError as err:
        raise InferenceError(f'{spec.describe()} (from {spec.source}) cannot run on a 1x3x{height}x{width} input: '
                             f'{first_line(err)}') from None


def _synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _resident_kib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise OSError(f'{field} not in /proc/self/status')


def _release_free_heap():
    """Hand freed heap memory back to the OS (glibc), so it is not silently reused by
    the measured pass and hidden from the resident-size peak."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL('libc.so.6').malloc_trim(0)


def _cpu_peak_mib(run_once):
    try:
        _release_free_heap()
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM (peak RSS) to the current RSS
        before = _resident_kib('VmRSS')
        run_once()
        return (_resident_kib('VmHWM') - before) / 1024
    except OSError:
        return None


def _cuda_peak_mib(run_once, device):
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    run_once()
    _synchronize(device)
    return torch.cuda.max_memory_allocated(device) / MIB


@dataclass
class Timing:
    latencies_s: List[float]
    peak_memory_mib: Optional[float]

    @property
    def median_ms(self):
        return 1000 * statistics.median(self.latencies_s)

    @property
    def min_ms(self):
        return 1000 * min(self.latencies_s)


def measure_latency(network, device, height, width, precision='fp32', channels_last=False, compile_network=False,
                    warmup=2, repeats=5):
    """Time ``repeats`` synchronised forward passes after ``warmup`` untimed ones, then
    measure peak memory on one more pass. ``network`` is a fresh module (any device)."""
    network = prepare_network(network, device, channels_last, compile_network)
    x = torch.rand(1, 3, height, width, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def run_once():
        with torch.inference_mode(), autocast(device, precision):
            return final_image(network(x))

    for _ in range(warmup):
        run_once()
    latencies = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        run_once()
        _synchronize(device)
        latencies.append(time.perf_counter() - start)
    if device.type == 'cuda':
        peak = _cuda_peak_mib(run_once, device)
    else:
        peak = _cpu_peak_mib(run_once)
    return Timing(latencies, peak)


# ----------------------------------------------------------------------------- backends
# One forward pass can run in several ways; the benchmark times them side by side.
# PyTorch: eager (contiguous), channels_last, compiled (torch.compile, contiguous).
# onnxruntime / openvino: the network exported to ONNX (export.export_to_onnx), fp32 in
# ONNX Runtime; OpenVINO's CPU plugin in f32 or bf16 (its inference precision hint).
BACKENDS = ('eager', 'channels_last', 'compiled', 'onnxruntime', 'openvino')


def configuration_problem(precision, backend, device):
    """Why ``precision`` x ``backend`` is not run on ``device`` (a sentence for the
    table), or None. A missing optional package counts as a reason, not an error."""
    if backend in ONNX_BACKENDS:
        if device.type != 'cpu':
            return f'{backend} is benchmarked on the CPU only'
        if backend == 'onnxruntime' and precision != 'fp32':
            return 'ONNX Runtime runs the exported model in fp32 only'
        try:
            importlib.import_module(backend)  # the module is named as the backend
            importlib.import_module('onnx')  # the export needs it too
        except ImportError:
            return f'{backend} not installed (pip install -e ".[onnx]"' + \
                (', pip install openvino)' if backend == 'openvino' else ')')
    problem = precision_problem(precision, device)
    if problem and precision == 'bf16' and device.type == 'cpu':
        return f'skipped: this CPU has no native bf16 ({cpu_capability()})'
    return problem


def prepare_runner(network, precision, backend, device, onnx_path=None, threads=0):
    """A function (1, 3, h, w) float32 tensor -> restored image (any device), running
    ``network`` (eval, fp32, weights loaded) the ``backend`` way, or the ONNX file
    ``onnx_path`` (exported from the same network) for onnxruntime/openvino."""
    if backend in ONNX_BACKENDS:
        from basicsr_sgenet.inference.onnx_backend import OnnxRuntimeRestorer, OpenVinoRestorer
        if backend == 'onnxruntime':
            return OnnxRuntimeRestorer(onnx_path, threads=threads).forward
        return OpenVinoRestorer(onnx_path, precision, threads=threads).forward
    channels_last = backend == 'channels_last'
    if backend != 'eager':
        network = copy.deepcopy(network)  # Module.to(memory_format) and compile act in place on the module
    prepared = prepare_network(network, device, channels_last, compile_network=backend == 'compiled')

    def run(x):
        x = x.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device, precision):
            return final_image(prepared(x))

    return run


def interleaved_timings(runners, run_once_for, device, warmup=1, repeats=3, on_progress=None):
    """Time every runner round-robin: ``warmup`` untimed rounds, then ``repeats`` rounds
    each timing one call per runner, so a change in machine load during the run affects
    every configuration alike. The last round also measures each call's peak memory
    (set up before the clock starts), so no extra pass is needed.

    Args:
        runners (dict): key -> runner (see ``prepare_runner``).
        run_once_for (callable): runner -> a no-argument function doing one timed unit
            of work (one forward pass, or every tile of a tiled image) and returning its
            output.
        on_progress (callable): called with a message before each round.

    Returns:
        tuple: (key -> Timing, key -> output of the last timed call, float32 on the CPU).
    """
    work = {key: run_once_for(runner) for key, runner in runners.items()}
    for round_index in range(warmup):
        if on_progress:
            on_progress(f'warm-up round {round_index + 1}/{warmup}')
        for run_once in work.values():
            run_once()
    latencies, peaks, outputs = {key: [] for key in work}, {}, {}
    for round_index in range(repeats):
        if on_progress:
            on_progress(f'timed round {round_index + 1}/{repeats}')
        last_round = round_index == repeats - 1
        for key, run_once in work.items():
            with (_peak_memory(device) if last_round else contextlib.nullcontext()) as peak:
                _synchronize(device)
                start = time.perf_counter()
                output = run_once()
                _synchronize(device)
                latencies[key].append(time.perf_counter() - start)
            if last_round:
                peaks[key] = peak.mib
                outputs[key] = output.detach().float().cpu()
            del output
    return {key: Timing(latencies[key], peaks[key]) for key in work}, outputs


class _PeakMemoryReading:
    mib = None


@contextlib.contextmanager
def _peak_memory(device):
    """Measure the peak memory of what runs inside (see the module docstring); the
    reading is None where it cannot be measured."""
    reading = _PeakMemoryReading()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        yield reading
        _synchronize(device)
        reading.mib = torch.cuda.max_memory_allocated(device) / MIB
        return
    try:
        _release_free_heap()
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM (peak RSS) to the current RSS
        before = _resident_kib('VmRSS')
    except OSError:
        yield reading
        return
    yield reading
    try:
        reading.mib = (_resident_kib('VmHWM') - before) / 1024
    except OSError:
        pass
