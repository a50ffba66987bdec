"""Estimated GPU memory of one training step, from the ``meta`` device (shapes only, no
compute, instant even for the papers' batches): what a recipe needs per GPU, and the
``train.accumulate`` that makes it fit a smaller one.

What is counted: the tensors autograd saves for the backward pass during one fp32
forward pass (``torch.autograd.graph.saved_tensors_hooks``; parameters excluded, a tensor
saved twice counted twice; a network that cannot run on ``meta`` is probed on the CPU
at 64x64 and scaled by the pixel count), plus 16 bytes per parameter (fp32 weights, gradients and
Adam's two moments). Not counted: the backward pass's transient buffers, cuDNN/cuBLAS
workspaces, the caching allocator's fragmentation, the CUDA context (~0.5 GiB). Under
bf16/fp16 autocast most saved activations are half size. So: an estimate to decide
what to try, not a measurement (``scripts/gpu_check.py`` measures).
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch

GIB = 2**30
BYTES_PER_PARAMETER = 16  # fp32 weight + gradient + Adam exp_avg + exp_avg_sq


@dataclass
class StepMemory:
    activations_per_sample: float  # bytes autograd saves per sample of the batch
    parameters: int
    how: str = 'meta'  # or 'cpu NxN, scaled': see estimate_step_memory

    def bytes_for(self, batch):
        return self.activations_per_sample * batch + BYTES_PER_PARAMETER * self.parameters

    def accumulate_to_fit(self, batch, budget_bytes):
        """The smallest ``train.accumulate`` (a divisor of ``batch``) whose micro-batch fits
        ``budget_bytes``, or None if even one sample does not."""
        for steps in range(1, batch + 1):
            if batch % steps == 0 and self.bytes_for(batch // steps) <= budget_bytes:
                return steps
        return None


def _saved_bytes(arch, kwargs, crop, device):
    """(bytes autograd saves for one 1 x 3 x crop x crop forward pass, parameter count)."""
    from basicsr.utils.registry import ARCH_REGISTRY
    with torch.device(device):
        network = ARCH_REGISTRY.get(arch)(**kwargs).train()
    parameter_ids = {id(parameter) for parameter in network.parameters()}
    saved = 0

    def pack(tensor):
        nonlocal saved
        if id(tensor) not in parameter_ids:
            saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        network(torch.zeros(1, 3, crop, crop, device=device))
    return saved, sum(parameter.numel() for parameter in network.parameters())


def estimate_step_memory(arch, kwargs, crop, probe_crop=64) -> Optional[StepMemory]:
    """StepMemory of ``arch(**kwargs)`` training on ``crop`` x ``crop`` crops: from the
    meta device at ``crop``; for a network whose forward needs real values, from a real
    CPU pass at ``probe_crop`` scaled by the pixel count (activations grow with the
    area). None where neither runs."""
    try:
        saved, parameters = _saved_bytes(arch, kwargs, crop, 'meta')
        return StepMemory(saved, parameters)
    except Exception:  # noqa: BLE001 -- data-dependent code cannot run on meta: probe on the CPU
        pass
    try:
        saved, parameters = _saved_bytes(arch, kwargs, probe_crop, 'cpu')
    except Exception:  # noqa: BLE001 -- no estimate rather than a failed report
        return None
    return StepMemory(saved * (crop / probe_crop) ** 2, parameters, f'cpu {probe_crop}x{probe_crop}, scaled')


def recipe_batch_and_crop(opt):
    """``(total batch, crop)`` of a training recipe at its most memory-hungry point: the
    largest ``batch x crop^2`` of its progressive stages, else ``total_batch_size`` (or
    ``batch_size_per_gpu``) at ``gt_size``."""
    train_set = opt['datasets']['train']
    total = train_set.get('total_batch_size') or train_set.get('batch_size_per_gpu')
    progressive = (opt.get('train') or {}).get('progressive')
    if progressive and progressive.get('total_mini_batch_sizes'):
        stages = zip(progressive['total_mini_batch_sizes'], progressive['gt_sizes'])
        return max(stages, key=lambda stage: stage[0] * stage[1] ** 2)
    return total, train_set['gt_size']


def format_gib(value):
    return f'{value / GIB:.1f}' if value is not None and math.isfinite(value) else 'n/a'
