"""Print SGENet's parameters and multiply-accumulates (MACs) per block and in total.

MACs come from PyTorch's own counter (``torch.utils.flop_counter.FlopCounterMode``,
MACs = FLOPs / 2), which counts convolutions and matrix products; element-wise work
(activations, pooling, interpolation, padding) is not counted, as in the usual tables.
The network runs on the ``meta`` device: only shapes are propagated, so even the
default width at 720x1280 takes seconds and no memory.

Examples::

    python scripts/model_summary.py                      # paper configuration
    python scripts/model_summary.py --channels 32 48 64 --sizes 256x256
    python scripts/model_summary.py --opt options/train_SGENet_GoPro.yml
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

import torch  # noqa: E402

import basicsr_sgenet  # noqa: E402,F401  (registers SGENet)
from basicsr.archs import build_network  # noqa: E402
from basicsr_sgenet.archs.sgenet_arch import PAPER_CHANNELS  # noqa: E402
from basicsr_sgenet.integration.errors import InferenceError, OptionError, exit_on_user_error  # noqa: E402
from basicsr_sgenet.integration.options import read_option_file  # noqa: E402
from basicsr_sgenet.tools.profiling import count_parameters, forward_macs, parse_size  # noqa: E402


def size_argument(text):
    """argparse type for --sizes: profiling.parse_size, with its message kept as the usage error."""
    try:
        return parse_size(text, 'value')
    except InferenceError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--opt', help='BasicSR option file; its network_g is summarised (other flags ignored)')
    parser.add_argument('--in-channels', type=int, default=3)
    parser.add_argument('--channels', type=int, nargs='+', default=list(PAPER_CHANNELS), help='width per scale')
    parser.add_argument('--num-rdm', type=int, default=2, help='RDMs per level')
    parser.add_argument('--no-cem', action='store_true', help='plain skip fusion instead of CEM')
    parser.add_argument('--no-csam', action='store_true', help='plain cross-stage sum instead of CSAM')
    parser.add_argument('--csam-reduction', type=int, default=8)
    parser.add_argument('--sizes', type=size_argument, nargs='+', default=[(256, 256), (720, 1280)],
                        help='input sizes HxW (default: 256x256 720x1280)')
    return parser.parse_args(argv)


def network_options(args):
    """The network_g dict to build, from the option file or the flags."""
    if args.opt:
        network = read_option_file(args.opt).get('network_g')
        if not isinstance(network, dict) or network.get('type') != 'SGENet':
            raise OptionError(f'Option file {args.opt}: network_g must be a mapping with type: SGENet')
        return network
    return dict(type='SGENet', in_channels=args.in_channels, channels=args.channels, num_rdm=args.num_rdm,
                use_cem=not args.no_cem, use_csam=not args.no_csam, csam_reduction=args.csam_reduction)


def block_groups(net):
    """(label, module paths) rows of the table, in data-flow order; paths do not overlap
    and together hold every parameter of the network."""
    fusion = type(net.stage1_decoder.fusions[0]).__name__
    cross_stage = type(net.stage2_encoder.cross_stage[0]).__name__
    return [
        ('stage 1 shallow conv', ['stage1_shallow']),
        ('stage 1 encoder RDMs', ['stage1_encoder.levels']),
        ('stage 1 encoder Downs', ['stage1_encoder.downs']),
        (f'stage 1 decoder {fusion}s (with Up)', ['stage1_decoder.fusions']),
        ('stage 1 decoder RDMs', ['stage1_decoder.levels']),
        ('SAM', ['sam']),
        ('stage 2 shallow + merge convs', ['stage2_shallow', 'stage2_merge']),
        ('stage 2 encoder RDMs', ['stage2_encoder.levels']),
        ('stage 2 encoder Downs', ['stage2_encoder.downs']),
        (f'stage 2 encoder {cross_stage}s', ['stage2_encoder.cross_stage']),
        (f'stage 2 decoder {fusion}s (with Up)', ['stage2_decoder.fusions']),
        ('stage 2 decoder RDMs', ['stage2_decoder.levels']),
        ('output conv', ['output_conv']),
    ]


def design_groups(net):
    """The split docs/architecture.md reports: RDMs, skip fusions (CEMs), cross-stage fusions
    (CSAMs), and the rest."""
    fusion = type(net.stage1_decoder.fusions[0]).__name__
    cross_stage = type(net.stage2_encoder.cross_stage[0]).__name__
    return [
        ('RDMs', [f'stage{s}_{part}.levels' for s in (1, 2) for part in ('encoder', 'decoder')]),
        (f'{fusion}s (with Up)', ['stage1_decoder.fusions', 'stage2_decoder.fusions']),
        (f'{cross_stage}s', ['stage2_encoder.cross_stage']),
        ('rest (shallow, merge, Downs, SAM, output)', ['stage1_shallow', 'stage1_encoder.downs', 'sam',
                                                       'stage2_shallow', 'stage2_merge', 'stage2_encoder.downs',
                                                       'output_conv']),
    ]


def parameters_under(net, path):
    module = net.get_submodule(path)
    return sum(p.numel() for p in module.parameters())


def macs_under(net, per_module, path):
    """MACs of the module at ``path``. Containers that are never called themselves
    (ModuleList) have no entry in the counter: their children are summed instead."""
    if path in per_module:
        return per_module[path]
    return sum(macs_under(net, per_module, f'{path}.{child}') for child, _ in net.get_submodule(path).named_children())


def print_table(title, rows, net, macs_per_size, sizes):
    size_names = [f'{h}x{w}' for h, w in sizes]
    header = f'{title:<44}{"params (M)":>12}' + ''.join(f'{"GMAC @" + s:>20}' for s in size_names)
    print(header)
    print('-' * len(header))
    totals = [0] * (1 + len(sizes))
    for label, paths in rows:
        values = [sum(parameters_under(net, p) for p in paths)]
        values += [sum(macs_under(net, per_module, p) for p in paths) for per_module, _ in macs_per_size]
        totals = [t + v for t, v in zip(totals, values)]
        print(f'{label:<44}{values[0] / 1e6:>12.4f}' + ''.join(f'{v / 1e9:>20.2f}' for v in values[1:]))
    print('-' * len(header))
    params = count_parameters(net)
    print(f'{"total":<44}{params / 1e6:>12.4f}' + ''.join(f'{total / 1e9:>20.2f}' for _, total in macs_per_size))
    # Guard against a table that silently misses part of the network.
    if totals[0] != params or any(t != total for t, (_, total) in zip(totals[1:], macs_per_size)):
        print('warning: the rows do not add up to the total; block_groups() misses a module')
    print()


def main(argv=None):
    args = parse_args(argv)
    options = exit_on_user_error(network_options, args)
    with torch.device('meta'):
        net = build_network(options)
    net.eval()
    macs_per_size = [forward_macs(net, *size)[::-1] for size in args.sizes]  # (per_module, total)
    print(f'network_g: {options}\n')
    print_table('block', block_groups(net), net, macs_per_size, args.sizes)
    print_table("by block kind", design_groups(net), net, macs_per_size, args.sizes)
    for (height, width), (_, total) in zip(args.sizes, macs_per_size):
        print(f'{height}x{width}: {total / 1e12:.3f} TMAC ({2 * total / 1e12:.3f} TFLOP)')


if __name__ == '__main__':
    main()
