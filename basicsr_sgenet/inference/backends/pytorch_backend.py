"""PyTorch: the network itself, eager or compiled, contiguous or channels-last, in fp32 or
under autocast (bf16/fp16). The only backend that takes weights rather than an exported file."""
import copy

import torch

from basicsr_sgenet.archs.arch_util import final_image
from basicsr_sgenet.inference.backends import Backend, Plan, auto_pytorch_settings, register
from basicsr_sgenet.inference.network import load_network, size_multiple
from basicsr_sgenet.inference.runtime import ImageRestorer, check_precision, prepare_network
from basicsr_sgenet.integration.precision import autocast


@register
class PyTorchBackend(Backend):
    name = 'pytorch'
    label = 'PyTorch'
    rank = 0
    # eager: contiguous; channels_last; compiled: torch.compile, contiguous.
    benchmark_modes = ('eager', 'channels_last', 'compiled')

    def plan(self, args, device):
        auto_precision, auto_channels_last, reason = auto_pytorch_settings(device)
        precision = auto_precision if args.precision == 'auto' else args.precision
        channels_last = auto_channels_last if args.channels_last is None else args.channels_last
        check_precision(precision, device)
        chosen_automatically = args.precision == 'auto' or args.channels_last is None
        return Plan(self.name, precision, device, channels_last, args.compile,
                    reason=reason if chosen_automatically else '')

    def restorer(self, plan, spec):
        network = load_network(spec)
        prepared = prepare_network(network, plan.device, plan.channels_last, plan.compile)
        return ImageRestorer(prepared, plan.device, plan.precision, plan.channels_last), size_multiple(network)

    def benchmark_runner(self, mode, network, precision, device, onnx_path=None, threads=0):
        channels_last = mode == 'channels_last'
        if mode != 'eager':
            network = copy.deepcopy(network)  # Module.to(memory_format) and compile act in place on the module
        prepared = prepare_network(network, device, channels_last, compile_network=mode == 'compiled')

        def run(x):
            x = x.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast(device, precision):
                return final_image(prepared(x))

        return run
