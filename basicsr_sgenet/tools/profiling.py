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
import ctypes
import gc
import statistics
import time
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from basicsr_sgenet.integration.errors import InferenceError, first_line
from basicsr_sgenet.inference.sizes import parse_size  # noqa: F401  (the tools' --size/--sizes)
from basicsr_sgenet.inference.backends import BENCHMARK_MODES as BACKENDS, benchmark_backend  # noqa: F401
from basicsr_sgenet.inference.network import build_network
from basicsr_sgenet.integration.precision import cpu_capability, precision_problem

MIB = 2**20


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
    """Time ``repeats`` synchronised forward passes of a random 1x3xHxW image after
    ``warmup`` untimed ones, with the peak memory of the last; ``network`` is a fresh
    module (any device). The benchmark's measurement (``interleaved_timings``) for one
    configuration."""
    mode = 'compiled' if compile_network else 'channels_last' if channels_last else 'eager'
    runner = prepare_runner(network, precision, mode, device)
    image = torch.rand(1, 3, height, width, device=device)
    timings, _ = interleaved_timings({mode: runner}, lambda run: lambda: run(image), device, warmup, repeats)
    return timings[mode]


# ----------------------------------------------------------------------------- backends
# One forward pass can run in several ways; the benchmark times them side by side. The ways
# ("modes": eager, channels_last, compiled, onnxruntime, openvino) come from the backend
# registry (inference/backends/), each backend running its own.


def configuration_problem(precision, mode, device):
    """Why ``precision`` x ``mode`` is not run on ``device`` (a sentence for the table),
    or None. A missing optional package counts as a reason, not an error."""
    problem = benchmark_backend(mode).benchmark_problem(mode, precision, device)
    if problem:
        return problem
    problem = precision_problem(precision, device)
    if problem and precision == 'bf16' and device.type == 'cpu':
        return f'skipped: this CPU has no native bf16 ({cpu_capability()})'
    return problem


def prepare_runner(network, precision, mode, device, onnx_path=None, threads=0):
    """A function (1, 3, h, w) float32 tensor -> restored image (any device), running
    ``network`` (eval, fp32, weights loaded) in ``mode``, or the ONNX file ``onnx_path``
    (exported from the same network) for the modes of backends that take a model."""
    return benchmark_backend(mode).benchmark_runner(mode, network, precision, device, onnx_path, threads)


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
