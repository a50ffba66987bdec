"""Benchmark networks: parameters, MACs, synchronised latency and peak memory.

    python scripts/benchmark.py                                   # paper SGENet, 256x256 and 720x1280
    python scripts/benchmark.py --preset basicsr --sizes 256x256 --precisions fp32 --repeats 3
    python scripts/benchmark.py --model 'SGENet:{"channels": [48, 60, 72]}' --opt options/test_SGENet_GoPro.yml
    python scripts/benchmark.py --sizes 720x1280 --macs-only      # counts only, no compute
    python scripts/benchmark.py --device cuda --precisions fp32,bf16,fp16 --modes eager,compiled \\
        --out results.md --plot results.png

Every size x precision x mode combination of every network is one table row. The table
goes to stdout and, with ``--out``, to a Markdown file; ``--plot`` (default: next to
``--out``) draws latency against MACs if matplotlib is installed. What the numbers mean
(what is counted, how time and memory are measured) is in ``basicsr_sgenet/profiling.py``
and is summarised under the table.
"""
import argparse
import os
import platform
import sys
from dataclasses import dataclass
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root

import torch  # noqa: E402

from basicsr_sgenet.errors import InferenceError, first_line  # noqa: E402
from basicsr_sgenet.inference.network import (  # noqa: E402
    NetworkSpec, build_network, parse_arch_args, spec_from_option_file)
from basicsr_sgenet.inference.runtime import check_precision, resolve_device  # noqa: E402
from basicsr_sgenet.plotting import labelled_scatter  # noqa: E402
from basicsr_sgenet.profiling import (  # noqa: E402
    build_on_meta, count_macs, count_parameters, format_gmacs, measure_latency, parse_size)

# BasicSR archs that restore at 1x (same size in and out), for a same-machine comparison.
# None of them is a deblurring network; they are what BasicSR itself ships.
BASICSR_PRESET = [
    ('SGENet (paper)', 'SGENet', {}),
    ('SwinIR 1x (denoising config)', 'SwinIR',
     dict(upscale=1, in_chans=3, img_size=128, window_size=8, img_range=1.0, depths=[6] * 6, embed_dim=180,
          num_heads=[6] * 6, mlp_ratio=2, upsampler='', resi_connection='1conv')),
    ('RIDNet', 'RIDNet', dict(in_channels=3, mid_channels=64, out_channels=3)),
    ('EDSR-baseline 1x', 'EDSR', dict(num_in_ch=3, num_out_ch=3, upscale=1)),
]
PRESETS = {'basicsr': BASICSR_PRESET}
COLUMNS = ['Model', 'Params (M)', 'Input', 'Precision', 'Mode', 'Device', 'GMACs', 'Latency median (ms)',
           'Latency min (ms)', 'Peak mem (MiB)', 'Timed runs']


@dataclass
class Row:
    label: str
    params: int
    size: tuple
    precision: str
    mode: str
    device: str
    macs: int
    median_ms: Optional[float] = None
    min_ms: Optional[float] = None
    peak_mib: Optional[float] = None
    runs: int = 0
    note: str = ''
    macs_counted_on: str = 'meta'

    def cells(self):
        def number(value, fmt):
            return '–' if value is None else format(value, fmt)
        latency = self.note or number(self.median_ms, '.1f')
        return [self.label, f'{self.params / 1e6:.2f}', f'{self.size[0]}x{self.size[1]}', self.precision, self.mode,
                self.device, format_gmacs(self.macs), latency, number(self.min_ms, '.1f'),
                number(self.peak_mib, '.0f'), str(self.runs) if self.runs else '–']


def parse_list(text, allowed, argument):
    values = [value.strip() for value in text.split(',') if value.strip()]
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise InferenceError(f'{argument}: {", ".join(unknown) or "(empty)"} not among {", ".join(allowed)}')
    return values


def collect_specs(args):
    """[(label, NetworkSpec)] from --model, --opt and --preset, in that order."""
    specs = []
    for text in args.model or []:
        name, _, kwargs_text = text.partition(':')
        kwargs = parse_arch_args(kwargs_text, f'--model {text}')
        label = name + (' ' + ', '.join(f'{k}={v}' for k, v in kwargs.items()) if kwargs else '')
        specs.append((label, NetworkSpec(arch=name, kwargs=kwargs, source=f'--model {text}')))
    for path in args.opt or []:
        spec = spec_from_option_file(path)
        specs.append((os.path.splitext(os.path.basename(path))[0], spec))
    if args.preset:
        specs += [(label, NetworkSpec(arch=arch, kwargs=dict(kwargs), source=f'--preset {args.preset}'))
                  for label, arch, kwargs in PRESETS[args.preset]]
    if not specs:
        specs.append(('SGENet (paper)', NetworkSpec(arch='SGENet', source='default')))
    return specs


def machine_description(device):
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    text = f'CPU: {cpu}, {os.cpu_count()} logical cores, torch {torch.__version__}, {torch.get_num_threads()} threads'
    if hasattr(os, 'getloadavg'):
        # Latency on a shared machine depends on what else runs: say how busy it was.
        text += f', 1-min load average {os.getloadavg()[0]:.1f} at start'
    if device.type == 'cuda':
        text += f'; GPU: {torch.cuda.get_device_name(device)}'
    return text


def run_benchmark(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    machine = machine_description(device)
    sizes = [parse_size(text, '--sizes') for text in args.sizes.split(',') if text.strip()]
    precisions = parse_list(args.precisions, ['fp32', 'bf16', 'fp16'], '--precisions')
    modes = parse_list(args.modes, ['eager', 'compiled'], '--modes')
    for precision in precisions:
        check_precision(precision, device)
    if args.repeats < 1 or args.warmup < 0:
        raise InferenceError('--repeats must be >= 1 and --warmup >= 0')
    if args.macs_only:
        precisions, modes = ['–'], ['–']  # counts do not depend on either: one row per network and size
    specs = collect_specs(args)

    rows = []
    for label, spec in specs:
        meta_network = build_on_meta(spec)
        params = count_parameters(meta_network)
        for size in sizes:
            macs, counted_on = count_macs(spec, *size, network=meta_network)
            for precision in precisions:
                for mode in modes:
                    row = Row(label, params, size, precision, mode, device.type, macs, macs_counted_on=counted_on)
                    if not args.macs_only:
                        print(f'timing {label} {size[0]}x{size[1]} {precision} {mode} on {device} ...',
                              file=sys.stderr, flush=True)
                        try:
                            timing = measure_latency(build_network(spec), device, *size, precision=precision,
                                                     channels_last=args.channels_last,
                                                     compile_network=mode == 'compiled', warmup=args.warmup,
                                                     repeats=args.repeats)
                            row.median_ms, row.min_ms = timing.median_ms, timing.min_ms
                            row.peak_mib, row.runs = timing.peak_memory_mib, args.repeats
                        except (RuntimeError, torch.OutOfMemoryError) as err:
                            row.note = 'failed: ' + first_line(err)[:80]
                        finally:
                            if device.type == 'cuda':
                                torch.cuda.empty_cache()
                    rows.append(row)
    return rows, machine


def markdown_report(rows, machine, args):
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(row.cells()) + ' |' for row in rows]
    lines += ['', f'Machine: {machine}.']
    if args.macs_only:
        lines.append('MACs and parameters only (--macs-only): no latency or memory measured.')
    else:
        lines.append(f'Latency: {args.warmup} warm-up run(s), then median and min of {args.repeats} timed run(s) of '
                     'one forward pass at batch 1, input already on the device, torch.cuda.synchronize() around '
                     'each run on CUDA. Peak mem: CUDA max_memory_allocated during one pass (weights included); '
                     'CPU rise of peak RSS over RSS before one pass (weights excluded).')
    on_cpu = sorted({row.label for row in rows if row.macs_counted_on != 'meta'})
    lines.append('GMACs: torch.utils.flop_counter FLOPs / 2 (convolutions and matrix products), counted on the '
                 'meta device' + (f' (by a real CPU pass for {", ".join(on_cpu)})' if on_cpu else '') + '.')
    return '\n'.join(lines) + '\n'


def plot(rows, path):
    """Latency against MACs, one point per row; returns a message about what happened."""
    timed = [row for row in rows if row.median_ms is not None]
    if not timed:
        return f'no timed rows: skipped the plot {path}'
    points = [(row.macs / 1e9, row.median_ms, f'{row.label} {row.size[0]}x{row.size[1]} {row.precision} {row.mode}')
              for row in timed]
    return labelled_scatter(points, path, 'GMACs per forward pass', f'median latency (ms), {timed[0].device}',
                            log_y=True)


def build_parser():
    parser = argparse.ArgumentParser(description='Params, MACs, synchronised latency and peak memory of networks.')
    parser.add_argument('--model', action='append', metavar='ARCH[:JSON]',
                        help='registered arch and its JSON kwargs, e.g. \'SGENet:{"num_rdm": 1}\' (repeatable)')
    parser.add_argument('--opt', action='append', metavar='YML', help="an option file's network_g (repeatable)")
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help='basicsr: SGENet plus BasicSR archs that restore at 1x (SwinIR, RIDNet, EDSR)')
    parser.add_argument('--sizes', default='256x256,720x1280', help='HEIGHTxWIDTH list (default 256x256,720x1280)')
    parser.add_argument('--precisions', default='fp32,bf16', help='fp32,bf16,fp16 (fp16: CUDA only)')
    parser.add_argument('--modes', default='eager', help='eager,compiled (compiled: torch.compile)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs first (default 2)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs; the median is reported (default 5)')
    parser.add_argument('--channels-last', action='store_true', help='channels-last memory format')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (default: torch default)')
    parser.add_argument('--macs-only', action='store_true', help='params and MACs only (no compute)')
    parser.add_argument('--out', help='also write the Markdown table to this file')
    parser.add_argument('--plot', help='latency-vs-MACs plot (PNG; default: --out with .png)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        rows, machine = run_benchmark(args)
    except InferenceError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    report = markdown_report(rows, machine, args)
    print(report)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(report)
    plot_path = args.plot or (os.path.splitext(args.out)[0] + '.png' if args.out else None)
    if plot_path and not args.macs_only:
        print(plot(rows, plot_path), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
