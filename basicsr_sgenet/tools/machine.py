"""The machine a measurement ran on, in one line: every figure the docs record names it
(CPU model and capability matter here: bf16 is ~100x slower without native support)."""
import os
import platform


def cpu_model_name():
    """The CPU's model name as /proc/cpuinfo gives it (else what ``platform`` knows)."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe_machine(device=None, load_average=False):
    """CPU model, logical cores, its instruction-set capability, torch version and threads,
    and the GPU if ``device`` (default: any visible GPU) is one. ``load_average`` adds the
    1-minute load at the time of the call: latency on a shared machine depends on it."""
    import torch

    from basicsr_sgenet.integration.precision import cpu_capability

    text = (f'CPU: {cpu_model_name()}, {os.cpu_count()} logical cores, {cpu_capability()}; torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads')
    if load_average and hasattr(os, 'getloadavg'):
        text += f', 1-min load average {os.getloadavg()[0]:.1f} at start'
    if device is None:
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if torch.device(device).type == 'cuda':
        text += f'; GPU: {torch.cuda.get_device_name(device)}'
    return text
