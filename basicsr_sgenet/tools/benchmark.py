"""``scripts/benchmark.py``: parameters, MACs, synchronised latency and peak memory, for every
precision x backend, timed side by side.

    python scripts/benchmark.py                                   # paper SGENet, 256x256 and 720x1280
    python scripts/benchmark.py --preset deblur --sizes 256x256 --precisions fp32,bf16 \\
        --backends eager,channels_last,compiled,onnxruntime,openvino --warmup 1 --repeats 3 --out cpu.md
    python scripts/benchmark.py --sizes 720x1280 --tile 256 --tile-overlap 32 --backends eager,channels_last
    python scripts/benchmark.py --model 'SGENet:{"channels": [48, 60, 72]}' --opt options/test_SGENet_GoPro.yml
    python scripts/benchmark.py --sizes 720x1280 --macs-only      # counts only, no compute
    python scripts/benchmark.py --opt demo/options/train_SGENet_demo.yml --weights net_g_latest.pth \\
        --psnr-on demo/blur:demo/sharp --precisions fp32,bf16 --backends eager,channels_last,onnxruntime

Every size x precision x backend combination of every network is one table row. The
configurations of one network and size are timed round-robin (one call of each per
round), so a change in machine load affects all alike; the speed-up column divides each
by eager fp32 of the same network and size. Backends: ``eager``, ``channels_last`` and
``compiled`` (torch.compile) in PyTorch; ``onnxruntime`` and ``openvino`` on the network
exported to ONNX (``basicsr_sgenet.export``; both optional packages). A configuration
the machine cannot run well or at all (bf16 on a CPU without native bf16, fp16 on the
CPU, a missing package) is a row with the reason instead of numbers. With ``--psnr-on
BLUR_DIR:SHARP_DIR`` and trained ``--weights``, every configuration also restores those
images and reports its PSNR against the sharp ones and the change from eager fp32.

The table goes to stdout and, with ``--out``, to a Markdown file, followed by the
machine (CPU model, its vector ISA and native-bf16 capability, threads, load);
``--plot`` (default: next to ``--out``) draws latency against MACs if matplotlib is
installed. What the numbers mean is in ``basicsr_sgenet/tools/profiling.py`` and is
summarised under the table.
"""
import argparse
import os
import sys
import tempfile
import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from basicsr_sgenet.integration.errors import InferenceError, UserError, first_line, status_or_user_error
from basicsr_sgenet.inference.network import (NetworkSpec, load_network, parse_arch_args, size_multiple,
                                              spec_from_option_file)
from basicsr_sgenet.inference.runtime import check_precision, resolve_device
from basicsr_sgenet.inference.tiling import check_tile_settings, count_tiles, tiled_forward
from basicsr_sgenet.tools.plotting import labelled_scatter
from basicsr_sgenet.integration.own_outputs import check_report_paths, write_report
from basicsr_sgenet.integration.precision import PRECISIONS
from basicsr_sgenet.tools.machine import describe_machine
from basicsr_sgenet.inference.backends import BENCHMARK_MODES as BACKENDS, MODEL_MODES
from basicsr_sgenet.tools.profiling import (build_on_meta, configuration_problem, count_macs,
                                      count_parameters, format_gmacs, interleaved_timings,
                                      parse_size, prepare_runner)

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
# The deblurring networks this plugin registers, each in its published GoPro configuration
# (the arch defaults). NAFNet without TLC: global pooling, as exported to ONNX.
DEBLUR_PRESET = [
    ('SGENet (paper)', 'SGENet', {}),
    ('MPRNet', 'MPRNet', {}),
    ('MIMO-UNet', 'MIMOUNet', {}),
    ('MIMO-UNet+', 'MIMOUNetPlus', {}),
    ('NAFNet-width64 (no TLC)', 'NAFNet', {}),
    ('Restormer', 'Restormer', {}),
    ('MLWNet (no local mode)', 'MLWNet', {}),
    ('FFTformer', 'FFTformer', {}),
    ('Stripformer', 'Stripformer', {}),
]
PRESETS = {'basicsr': BASICSR_PRESET, 'deblur': DEBLUR_PRESET}
COLUMNS = ['Model', 'Params (M)', 'Input', 'Precision', 'Backend', 'Device', 'GMACs', 'Latency median (ms)',
           'Latency min (ms)', 'Speed-up', 'Max abs diff', 'PSNR (dB)', 'ΔPSNR (dB)', 'Peak mem (MiB)',
           'Timed runs']
REFERENCE = ('fp32', 'eager')  # what the speed-up and the differences are relative to


@dataclass
class Row:
    label: str
    params: int
    size: tuple
    precision: str
    backend: str
    device: str
    macs: int
    tiles: int = 1
    median_ms: Optional[float] = None
    min_ms: Optional[float] = None
    speedup: Optional[float] = None
    max_diff: Optional[float] = None
    psnr: Optional[float] = None
    psnr_change: Optional[float] = None
    peak_mib: Optional[float] = None
    runs: int = 0
    note: str = ''
    macs_counted_on: str = 'meta'

    def cells(self):
        def number(value, fmt):
            return '–' if value is None else format(value, fmt)
        latency = self.note or number(self.median_ms, '.1f')
        size = f'{self.size[0]}x{self.size[1]}' + (f' ({self.tiles} tiles)' if self.tiles > 1 else '')
        return [self.label, f'{self.params / 1e6:.2f}', size, self.precision, self.backend, self.device,
                format_gmacs(self.macs), latency, number(self.min_ms, '.1f'),
                '–' if self.speedup is None else f'{self.speedup:.2f}x', number(self.max_diff, '.1e'),
                number(self.psnr, '.3f'), number(self.psnr_change, '+.3f'), number(self.peak_mib, '.0f'),
                str(self.runs) if self.runs else '–']


def parse_list(text, allowed, argument):
    values = [value.strip() for value in text.split(',') if value.strip()]
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise InferenceError(f'{argument}: {", ".join(unknown) or "(empty)"} not among {", ".join(allowed)}')
    return values


def parse_configurations(args):
    """[(precision, backend)]: ``--configs`` if given, else every --precisions x --backends."""
    if args.configs:
        configurations = []
        for item in args.configs.split(','):
            precision, _, backend = item.strip().partition(':')
            if precision not in PRECISIONS or backend not in BACKENDS:
                raise InferenceError(f'--configs: {item.strip()!r} is not PRECISION:BACKEND with a precision among '
                                     f'{", ".join(PRECISIONS)} and a backend among {", ".join(BACKENDS)}')
            configurations.append((precision, backend))
        return configurations
    precisions = parse_list(args.precisions, list(PRECISIONS), '--precisions')
    backends = parse_list(args.backends, list(BACKENDS), '--backends')
    return [(precision, backend) for precision in precisions for backend in backends]


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


def read_pairs(text):
    """[(blurred LoadedImage, sharp LoadedImage)] from 'BLUR_DIR:SHARP_DIR' (same file names)."""
    from basicsr_sgenet.inference.image_io import list_input_images, read_image
    blur_dir, _, sharp_dir = text.partition(':')
    if not blur_dir or not sharp_dir:
        raise InferenceError(f'--psnr-on {text!r} is not BLUR_DIR:SHARP_DIR')
    pairs = []
    for blur_path in list_input_images(blur_dir):
        sharp_path = os.path.join(sharp_dir, os.path.basename(blur_path))
        if not os.path.isfile(sharp_path):
            raise InferenceError(f'--psnr-on: {blur_path} has no sharp counterpart {sharp_path}')
        pairs.append((read_image(blur_path), read_image(sharp_path)))
    return pairs


def mean_psnr(forward, pairs):
    """Mean PSNR (dB, 8-bit, MATLAB protocol) of ``forward``'s restorations of ``pairs``."""
    from basicsr_sgenet.metrics.matlab_metric import calculate_psnr_matlab
    scores = []
    for blurred, sharp in pairs:
        batch = torch.from_numpy(np.ascontiguousarray(blurred.rgb.transpose(2, 0, 1)))[None]
        restored = forward(batch).detach().float().cpu()[0].numpy().transpose(1, 2, 0)
        scores.append(calculate_psnr_matlab(np.round(np.clip(restored, 0, 1) * 255),
                                            np.round(sharp.rgb * 255)))
    return float(np.mean(scores))


class Workload:
    """One network at one input size: the input, and how one timed unit of work runs
    (the whole image, or every tile of it with the deblur CLI's tiling)."""

    def __init__(self, size, tile, overlap, multiple, device):
        self.tile = tile if tile and max(size) > tile else 0
        self.overlap, self.multiple = overlap, multiple
        self.tiles = count_tiles(*size, self.tile, overlap, multiple) if self.tile else 1
        generator = torch.Generator().manual_seed(0)
        self.image = torch.rand(1, 3, *size, generator=generator)
        if not self.tile:
            self.image = self.image.to(device)  # latency excludes the transfer, as before

    def forward_for(self, runner):
        if not self.tile:
            return runner
        return lambda image: tiled_forward(runner, image, self.tile, self.overlap, self.multiple)

    def run_once_for(self, runner):
        forward = self.forward_for(runner)
        return lambda: forward(self.image)


def run_benchmark(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    machine = describe_machine(device, load_average=True)
    if device.type == 'cuda':
        # PyTorch runs fp32 convolutions as TF32 on Ampere and later by default: fp32 rows
        # would not be fp32, nor the reference the other rows are compared with.
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        machine += ' (TF32 off: fp32 rows are true fp32)'

    sizes = [parse_size(text, '--sizes') for text in args.sizes.split(',') if text.strip()]
    configurations = parse_configurations(args)
    for precision in dict.fromkeys(precision for precision, _ in configurations):
        if not (precision == 'bf16' and device.type == 'cpu'):  # bf16 rows say why if the CPU lacks native bf16
            check_precision(precision, device, '--precisions')
    if args.repeats < 1 or args.warmup < 0:
        raise InferenceError('--repeats must be >= 1 and --warmup >= 0')
    if args.tile:
        check_tile_settings(args.tile, args.tile_overlap)
    if args.macs_only:
        configurations = [('–', '–')]  # counts do not depend on them: one row per network and size
    specs = collect_specs(args)
    if args.weights and len(specs) != 1:
        raise InferenceError('--weights needs exactly one network (one --model or --opt, no --preset)')
    if args.weights:
        from basicsr_sgenet.integration.weights import fetch_weights
        fetch_weights(args.weights)  # a URL is downloaded (once) before any work; a bad one stops the run here
    pairs = read_pairs(args.psnr_on) if args.psnr_on else []

    rows = []
    with tempfile.TemporaryDirectory(prefix='benchmark-onnx-') as onnx_dir:
        for label, spec in specs:
            meta_network = build_on_meta(spec)
            params = count_parameters(meta_network)
            network = None if args.macs_only else built_network(spec, args.weights)
            onnx_path = None
            for size in sizes:
                macs, counted_on = count_macs(spec, *size, network=meta_network)
                size_rows = [Row(label, params, size, precision, backend, device.type, macs,
                                 macs_counted_on=counted_on) for precision, backend in configurations]
                rows += size_rows
                if args.macs_only:
                    continue
                if onnx_path is None and any(row.backend in MODEL_MODES for row in size_rows):
                    onnx_path = export_for_benchmark(network, label, onnx_dir, size_rows)
                time_side_by_side(network, size_rows, size, onnx_path, device, pairs, args)
    return rows, machine


def built_network(spec, weights):
    """``spec``'s network in eval mode (fixed random weights unless ``weights``)."""
    torch.manual_seed(0)
    return load_network(dataclasses.replace(spec, weights=weights, param_key=None))


def export_for_benchmark(network, label, folder, rows):
    """The network exported to ONNX in ``folder`` (or None, noting why on the ONNX rows)."""
    from basicsr_sgenet.inference.onnx_export import export_to_onnx
    path = os.path.join(folder, f'{len(os.listdir(folder))}.onnx')
    try:
        model = export_to_onnx(network)
    except UserError as err:
        for row in rows:
            if row.backend in MODEL_MODES:
                row.note = row.note or f'export failed: {first_line(err)[:80]}'
        return None
    try:
        with open(path, 'wb') as f:
            f.write(model.SerializeToString())
    except OSError as err:  # a full disk: the ONNX rows cannot be measured, which is no result to report
        raise InferenceError(f'Cannot write the ONNX export {path} ({err.strerror or err})') from None
    print(f'exported {label} to ONNX for the onnxruntime/openvino rows', file=sys.stderr, flush=True)
    return path


def time_side_by_side(network, rows, size, onnx_path, device, pairs, args):
    """Fill in ``rows`` (one network, one size): prepare every runnable configuration,
    time them round-robin, then compare each output with eager fp32's."""
    workload = Workload(size, args.tile, args.tile_overlap, size_multiple(network), device)
    runners = {}
    for row in rows:
        row.tiles = workload.tiles
        problem = row.note or configuration_problem(row.precision, row.backend, device)
        if row.backend in MODEL_MODES and onnx_path is None and not problem:
            problem = 'no ONNX export'
        if problem:
            row.note = problem
            continue
        try:
            runners[id(row)] = prepare_runner(network, row.precision, row.backend, device, onnx_path,
                                              threads=torch.get_num_threads())
        except (UserError, RuntimeError) as err:
            row.note = 'failed: ' + first_line(err)[:80]
    if not runners:
        return
    print(f'timing {rows[0].label} {size[0]}x{size[1]}: {len(runners)} configuration(s) round-robin, '
          f'{args.warmup} warm-up + {args.repeats} timed round(s) ...', file=sys.stderr, flush=True)
    try:
        timings, outputs = interleaved_timings(
            runners, workload.run_once_for, device, args.warmup, args.repeats,
            on_progress=lambda message: print(f'  {message}', file=sys.stderr, flush=True))
    except (RuntimeError, torch.OutOfMemoryError) as err:
        for row in rows:
            if id(row) in runners:
                row.note = 'failed: ' + first_line(err)[:80]
        return
    by_id = {id(row): row for row in rows}
    for key, timing in timings.items():
        row = by_id[key]
        row.median_ms, row.min_ms, row.runs = timing.median_ms, timing.min_ms, args.repeats
        # ONNX Runtime and OpenVINO keep their memory arenas between calls, so one call's
        # rise says nothing about what they need.
        row.peak_mib = None if row.backend in MODEL_MODES else timing.peak_memory_mib
        if pairs:
            with torch.inference_mode():
                row.psnr = mean_psnr(workload.forward_for(runners[key]), pairs)
    reference = next((row for row in rows if (row.precision, row.backend) == REFERENCE and id(row) in timings), None)
    if reference is None:
        return
    for key in timings:
        row = by_id[key]
        row.speedup = reference.median_ms / row.median_ms
        row.max_diff = float((outputs[key] - outputs[id(reference)]).abs().max())
        if pairs:
            row.psnr_change = row.psnr - reference.psnr
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def markdown_report(rows, machine, args):
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(row.cells()) + ' |' for row in rows]
    lines += ['', f'Machine: {machine}.']
    if args.macs_only:
        lines.append('MACs and parameters only (--macs-only): no latency or memory measured.')
    else:
        tiled = f' Inputs larger than {args.tile} px run in {args.tile}x{args.tile} tiles with ' \
            f'{args.tile_overlap} px overlap, as the deblur CLI tiles them; latency is per image.' if args.tile else ''
        lines.append(f'Latency: {args.warmup} warm-up round(s), then median and min of {args.repeats} timed round(s) '
                     'of one forward pass at batch 1, the configurations of each network and size timed '
                     'round-robin; input already on the device, torch.cuda.synchronize() around each run on CUDA.'
                     f'{tiled} Speed-up: eager fp32 median / this median (same network and size). Max abs diff: '
                     'largest |output - eager fp32 output| on the same random input. Peak mem: CUDA '
                     'max_memory_allocated during one pass (weights included); CPU rise of peak RSS over RSS '
                     'before one pass (weights excluded); not measured for onnxruntime/openvino, whose memory '
                     'arenas persist between calls.')
        if args.psnr_on:
            lines.append(f'PSNR: mean over the images of {args.psnr_on} (restored vs sharp, 8-bit, MATLAB protocol) '
                         f'with weights {args.weights or "(random: meaningless)"}; ΔPSNR against eager fp32.')
        lines.append('Weights: ' + (args.weights or 'random (fixed seed): latency does not depend on them') + '.')
    on_cpu = sorted({row.label for row in rows if row.macs_counted_on != 'meta'})
    lines.append('GMACs: torch.utils.flop_counter FLOPs / 2 (convolutions and matrix products), counted on the '
                 'meta device' + (f' (by a real CPU pass for {", ".join(on_cpu)})' if on_cpu else '') + '.')
    return '\n'.join(lines) + '\n'


def plot(rows, path):
    """Latency against MACs, one point per row; returns a message about what happened."""
    timed = [row for row in rows if row.median_ms is not None]
    if not timed:
        return f'no timed rows: skipped the plot {path}'
    points = [(row.macs / 1e9, row.median_ms, f'{row.label} {row.size[0]}x{row.size[1]} {row.precision} {row.backend}')
              for row in timed]
    return labelled_scatter(points, path, 'GMACs per forward pass', f'median latency (ms), {timed[0].device}',
                            log_y=True, command='benchmark')


def build_parser():
    parser = argparse.ArgumentParser(prog='python scripts/benchmark.py',
                                     description='Params, MACs, synchronised latency and peak memory of networks, '
                                     'every precision x backend timed side by side.')
    parser.add_argument('--model', action='append', metavar='ARCH[:JSON]',
                        help='registered arch and its JSON kwargs, e.g. \'SGENet:{"num_rdm": 1}\' (repeatable)')
    parser.add_argument('--opt', action='append', metavar='YML', help="an option file's network_g (repeatable)")
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help='deblur: SGENet and the registered deblurring peers (MPRNet, MIMO-UNet(+), NAFNet, '
                        'Restormer, MLWNet, FFTformer, Stripformer); basicsr: SGENet plus BasicSR archs that restore '
                        'at 1x (SwinIR, RIDNet, EDSR)')
    parser.add_argument('--sizes', default='256x256,720x1280', help='HEIGHTxWIDTH list (default 256x256,720x1280)')
    parser.add_argument('--precisions', default='fp32,bf16',
                        help='fp32,bf16,fp16 (bf16 on the CPU: only with native bf16, else the row says why; '
                        'fp16: CUDA only)')
    parser.add_argument('--backends', '--modes', dest='backends', default='eager',
                        help=f'{",".join(BACKENDS)} (default eager; compiled: torch.compile; onnxruntime/openvino: '
                        'the network exported to ONNX, CPU only)')
    parser.add_argument('--configs', metavar='PRECISION:BACKEND,...',
                        help='exactly these configurations instead of --precisions x --backends, e.g. '
                        'fp32:eager,fp32:channels_last,bf16:channels_last')
    parser.add_argument('--tile', type=int, default=0, help='run inputs larger than this many pixels in tiles, as the '
                        'deblur CLI does (default 0: whole)')
    parser.add_argument('--tile-overlap', type=int, default=32, help='tile overlap in pixels (default 32)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first (default 2)')
    parser.add_argument('--repeats', type=int, default=5, help='timed rounds; the median is reported (default 5)')
    parser.add_argument('--threads', type=int, default=0, help='torch (and ONNX Runtime/OpenVINO) CPU threads '
                        '(default: torch default)')
    parser.add_argument('--weights', help='trained weights for the one network benchmarked, a file or an '
                        'https:// URL (default: random)')
    parser.add_argument('--psnr-on', metavar='BLUR_DIR:SHARP_DIR',
                        help='also report each configuration\'s PSNR on these image pairs (with --weights)')
    parser.add_argument('--macs-only', action='store_true', help='params and MACs only (no compute)')
    parser.add_argument('--out', help='also write the Markdown table to this file')
    parser.add_argument('--plot', help='latency-vs-MACs plot (PNG; default: --out with .png)')
    return parser


def benchmark(args):
    """Measure, print (and write) the report; returns the exit status. Raises UserError."""
    plot_path = args.plot or (os.path.splitext(args.out)[0] + '.png' if args.out else None)
    inputs = [args.weights, *(args.opt or [])] + (args.psnr_on.split(':') if args.psnr_on else [])
    check_report_paths('benchmark', inputs, {'--out': args.out, '--plot': None if args.macs_only else plot_path})
    rows, machine = run_benchmark(args)
    report = markdown_report(rows, machine, args)
    print(report)
    if args.out:
        write_report(args.out, report, 'benchmark')
    if plot_path and not args.macs_only:
        print(plot(rows, plot_path), file=sys.stderr)
    return 0


def main(argv=None):
    return status_or_user_error(benchmark, build_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
