"""Compute precisions, one table for training, validation, inference and benchmarks.

Reduced precision runs under ``torch.autocast``: weights stay fp32, convolutions and
matrix products run in bf16/fp16. Two combinations are refused rather than run:

* fp16 without CUDA: CPU fp16 convolutions are slow or unsupported;
* bf16 on a CPU without native bf16 instructions (AVX-512 BF16 or AMX): oneDNN then
  takes a reference path, measured ~250x slower than fp32 for one 96-channel 3x3
  convolution on an AVX2-only machine. ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
  tells which kind of CPU this is.
"""
import contextlib
import functools

import torch

PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}

# What option files may write for "no mixed precision".
_FULL_PRECISION = (None, False, 'none', 'null', 'fp32')


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16():
    """Whether oneDNN has fast bf16 kernels on this CPU (AVX-512 BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')  # /proc/cpuinfo names of the native bf16 instructions


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (an empty set where it cannot be read)."""
    try:
        with open('/proc/cpuinfo') as f:
            return set(next(line for line in f if line.startswith('flags')).split(':', 1)[1].split())
    except (OSError, StopIteration):
        return set()


def cpu_capability():
    """One line for benchmark tables and messages: the vector ISA torch's CPU kernels
    use and whether bf16 is native, e.g. 'AVX512 kernels, native bf16: yes (avx512_bf16)'."""
    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        isa = 'unknown'
    flags = cpu_flags()
    if cpu_has_native_bf16():
        found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
        return f'{isa} kernels, native bf16: yes' + (f' ({", ".join(found)})' if found else '')
    return f'{isa} kernels, native bf16: no (no {" or ".join(BF16_CPU_FLAGS)})'


def parse_precision(setting, where):
    """'fp32', 'bf16' or 'fp16' from an option value; ValueError naming ``where``."""
    if isinstance(setting, str):
        setting = setting.lower()
    if setting in _FULL_PRECISION:
        return 'fp32'
    if setting not in PRECISIONS:
        raise ValueError(f'{where} must be one of bf16, fp16 or null (fp32), got {setting!r}.')
    return setting


def precision_problem(precision, device):
    """Why ``precision`` must not run on ``device`` (a torch.device or its type), or None."""
    device_type = getattr(device, 'type', device)
    if precision == 'fp16' and device_type != 'cuda':
        return 'fp16 needs a CUDA device; on the CPU use fp32 (or bf16 where the CPU has native bf16)'
    if precision == 'bf16' and device_type == 'cuda' and not torch.cuda.is_bf16_supported():
        return 'this GPU does not support bf16; use fp16 or fp32'
    if precision == 'bf16' and device_type == 'cpu' and not cpu_has_native_bf16():
        return ('this CPU has no native bf16 (no AVX-512 BF16 or AMX), so bf16 convolutions take a reference '
                'path about 100-250x slower than fp32; use fp32')
    return None


def autocast(device, precision):
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == 'fp32':
        return contextlib.nullcontext()
    return torch.autocast(device_type=getattr(device, 'type', device), dtype=PRECISIONS[precision])


def option_precision(opt, section, device):
    """``<section>.mixed_precision`` of an option dict as 'fp32'/'bf16'/'fp16', checked
    against ``device``; OptionError naming the key otherwise."""
    from basicsr_sgenet.integration.errors import OptionError
    where = f'{section}.mixed_precision'
    try:
        precision = parse_precision((opt.get(section) or {}).get('mixed_precision'), where)
    except ValueError as err:
        raise OptionError(str(err)) from None
    problem = precision_problem(precision, device)
    if problem:
        raise OptionError(f'{where} is {precision} on {getattr(device, "type", device)}, but {problem}.')
    return precision
