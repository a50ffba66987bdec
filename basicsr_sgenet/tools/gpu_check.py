"""One command that turns the first minutes on a GPU into the numbers the docs lack.

    python scripts/gpu_check.py --out gpu_check.md                   # one GPU, <= 8 minutes
    python scripts/gpu_check.py --device cpu --quick --out cpu.md    # the same steps, tiny (CI)

Sections, in this order (cheap and decisive first), each written to ``--out`` as soon as
it is done, so a run cut short still leaves its report:

1. the device: GPU, driver, CUDA, cuDNN, torch, native bf16, TF32 settings;
2. collectives: nccl (gloo on a CPU) initialised in one process, one all-reduce;
3. estimated training memory per recipe (meta device, ``tools/training_memory.py``): per
   GPU at the papers' 8 GPUs and on this one, and the ``train.accumulate`` that fits;
4. eager inference: synchronised latency and peak memory (``tools/profiling.py``) at
   256x256 and 720x1280 for every registered deblurring arch of this package, fp32
   (TF32 off: true fp32), tf32 (CUDA), bf16 and fp16 autocast;
5. training: for every ``options/train_*_GoPro.yml``, a few optimizer steps of the
   recipe's model, loss, optimizer and schedule (random batches on the device; data
   loading excluded) in fp32, bf16 and fp16: iterations/s and peak memory, at the
   recipe's crop and per-GPU batch on 8 GPUs (its last progressive stage, if any);
6. tiled 4K deblurring (3840x2160, 512 tiles): seconds and peak memory per arch;
7. ``torch.compile``d inference (fp32), last: compiling takes the longest.

A time budget (``--budget``, 480 s) is checked before every measurement: what does not
fit is listed as skipped, never silently dropped. Out-of-memory and other failures of
one configuration are a row saying so, not the end of the run.
"""
import argparse
import gc
import glob
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

from basicsr_sgenet.inference.network import plugin_archs
from basicsr_sgenet.integration.atomic_files import atomic_write
from basicsr_sgenet.integration.errors import UserError, exit_on_user_error, first_line

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRECISIONS = ('fp32', 'tf32', 'bf16', 'fp16')
BUDGET_SECONDS = 480
FULL = {'sizes': [(256, 256), (720, 1280)], 'warmup': 2, 'repeats': 5, 'steps': 3, 'image_4k': (2160, 3840),
        'tile': 512, 'overlap': 32}
QUICK = {'sizes': [(32, 32), (48, 64)], 'warmup': 1, 'repeats': 1, 'steps': 1, 'image_4k': (96, 128),
         'tile': 64, 'overlap': 16, 'crop': 32, 'batch': 2}
PAPER_GPUS = 8


class CheckError(UserError):
    pass


# ----------------------------------------------------------------------------- the run

class Report:
    """Markdown sections, rewritten to ``path`` (atomically) after each one."""

    def __init__(self, path, budget_seconds):
        self.path, self.budget, self.started = path, budget_seconds, time.perf_counter()
        self.sections, self.skipped = [], []

    def elapsed(self):
        return time.perf_counter() - self.started

    def has_time(self, what):
        if self.elapsed() < self.budget:
            return True
        self.skipped.append(what)
        return False

    def add(self, title, lines):
        self.sections.append(f'## {title}\n\n' + '\n'.join(lines) + '\n')
        self.write()
        print(f'gpu_check: {title} done at {self.elapsed():.0f} s', flush=True)

    def write(self, finished=False):
        status = (f'finished in {self.elapsed():.0f} s' if finished else f'in progress ({self.elapsed():.0f} s)')
        head = f'# GPU check\n\n{status}, time budget {self.budget:.0f} s.\n\n'
        tail = ''
        if self.skipped:
            tail = '## Skipped (time budget reached)\n\n' + '\n'.join(f'- {what}' for what in self.skipped) + '\n'
        with atomic_write(self.path, 'w', durable=False) as f:
            f.write(head + '\n'.join(self.sections) + ('\n' + tail if tail else ''))


def table(header, rows):
    return ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)] + \
        ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]


def release(device):
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def failure(err):
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return 'out of memory'
    return f'failed: {type(err).__name__}: {first_line(err)[:160]}'


def precision_settings(precision, device):
    """(autocast precision, whether TF32 is allowed) for a row's precision; TF32 only
    matters on CUDA (Ampere and later), where PyTorch allows it for convolutions by default."""
    allow_tf32 = precision == 'tf32'
    if device.type == 'cuda':
        torch.backends.cudnn.allow_tf32 = allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    return ('fp32' if precision == 'tf32' else precision), allow_tf32


def row_precisions(device):
    return [precision for precision in PRECISIONS if precision != 'tf32' or device.type == 'cuda']


def recipe_files():
    return sorted(glob.glob(os.path.join(PACKAGE_ROOT, 'options', 'train_*_GoPro.yml')))


# ----------------------------------------------------------------------------- sections

def device_section(device):
    from basicsr_sgenet.integration.precision import cpu_has_native_bf16, cuda_has_native_bf16
    from basicsr_sgenet.tools.machine import describe_machine
    lines = [f'- Machine: {describe_machine(device)}',
             f'- Python {platform.python_version()}, torch {torch.__version__}']
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        try:
            driver = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader', '-i',
                                     str(device.index or 0)], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            driver = 'unknown (no nvidia-smi)'
        native_bf16 = cuda_has_native_bf16(device)
        lines += [f'- GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB, compute capability '
                  f'{props.major}.{props.minor}, {props.multi_processor_count} SMs',
                  f'- Driver {driver}; CUDA (torch build) {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}',
                  f'- Native bf16: {"yes" if native_bf16 else "no"}',
                  '- fp32 rows run with TF32 off (torch.backends.cudnn/cuda.matmul.allow_tf32 = False); tf32 rows '
                  'with it on (PyTorch\'s default for convolutions on Ampere and later).']
    else:
        lines += [f'- Native bf16 on this CPU: {"yes" if cpu_has_native_bf16() else "no"}',
                  '- CPU run: numbers say the steps work, not how fast a GPU is.']
    return lines


def collective_section(device):
    import datetime

    import torch.distributed as dist

    from basicsr_sgenet.tools.profiling import _synchronize
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    try:
        dist.init_process_group(backend, init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1,
                                timeout=datetime.timedelta(seconds=60),
                                **({'device_id': device} if device.type == 'cuda' else {}))
        value = torch.ones(4, device=device)
        dist.all_reduce(value)
        _synchronize(device)
        ok = bool((value == 1).all())
        result = f'{backend} initialised in one process, all-reduce {"correct" if ok else "WRONG"} in ' \
                 f'{time.perf_counter() - started:.2f} s'
    except Exception as err:  # noqa: BLE001 -- the report says what failed
        result = f'{backend}: {failure(err)}'
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return [f'- {result}']


def memory_section(device, arch_args):
    from basicsr_sgenet.integration.options import load_options
    from basicsr_sgenet.tools.training_memory import estimate_step_memory, format_gib, recipe_batch_and_crop
    budget = torch.cuda.get_device_properties(device).total_memory * 0.9 if device.type == 'cuda' else None
    rows = []
    for path in recipe_files():
        opt = load_options(path)
        arch = opt['network_g']['type']
        kwargs = {**{k: v for k, v in opt['network_g'].items() if k != 'type'}, **arch_args.get(arch, {})}
        total, crop = recipe_batch_and_crop(opt)
        estimate = estimate_step_memory(arch, kwargs, crop)
        if estimate is None:
            rows.append([os.path.basename(path), total, crop] + ['n/a (cannot run on meta)'] * 3)
            continue
        per_gpu = max(total // PAPER_GPUS, 1)
        fit = 'n/a (CPU)'
        if budget:
            steps = estimate.accumulate_to_fit(total, budget)
            fit = f'accumulate {steps}' if steps else 'does not fit at batch 1'
        rows.append([os.path.basename(path) + ('' if estimate.how == 'meta' else f' ({estimate.how})'), total, crop,
                     format_gib(estimate.bytes_for(total)),
                     format_gib(estimate.bytes_for(per_gpu)), fit])
    return ['Estimated from the meta device (fp32 saved activations + 16 bytes per parameter; see '
            'basicsr_sgenet/tools/training_memory.py), not measured.', ''] + \
        table(['Recipe', 'Total batch', 'Crop', 'GiB on 1 GPU', f'GiB per GPU on {PAPER_GPUS}',
               'On this GPU (90% of it)'], rows)


def build(arch, arch_args, device):
    from basicsr_sgenet.inference.network import NetworkSpec, build_network
    return build_network(NetworkSpec(arch=arch, kwargs=dict(arch_args.get(arch, {})))).eval().to(device)


def latency_section(report, device, settings, arch_args, compiled=False, compile_backend='inductor'):
    from basicsr_sgenet.integration.precision import precision_problem
    from basicsr_sgenet.tools.profiling import measure_latency
    rows = []
    precisions = ['fp32'] if compiled else row_precisions(device)
    for arch in plugin_archs():
        for height, width in settings['sizes']:
            for precision in precisions:
                what = f'{"compiled" if compiled else "eager"} {arch} {height}x{width} {precision}'
                problem = precision_problem(precision_settings(precision, device)[0], device, cpu_fp16=True)
                if problem:
                    rows.append([arch, f'{height}x{width}', precision, f'refused: {problem}', ''])
                    continue
                if not report.has_time(what):
                    continue
                network = None
                try:
                    network = build(arch, arch_args, device)
                    autocast_precision, _ = precision_settings(precision, device)
                    if compiled:
                        network = torch.compile(network, backend=compile_backend)
                    timing = measure_latency(network, device, height, width, autocast_precision,
                                             warmup=settings['warmup'], repeats=settings['repeats'])
                    cells = [f'{timing.median_ms:.1f}', f'{timing.peak_memory_mib:.0f}'
                             if timing.peak_memory_mib is not None else 'n/a']
                except Exception as err:  # noqa: BLE001 -- one row says what failed
                    cells = [failure(err), '']
                finally:
                    del network  # no copy stays on the device to inflate the next row's peak
                    if compiled:
                        torch._dynamo.reset()
                    release(device)
                rows.append([arch, f'{height}x{width}', precision] + cells)
    precision_settings('fp32', device)
    note = (f'torch.compile (backend {compile_backend}), fp32; the warm-up runs absorb compilation.' if compiled else
            'Autocast precisions; batch 1; median of the timed runs.')
    return [note, 'Peak memory: CUDA max allocated during one pass (weights and input included); CPU: rise of '
            'the peak resident set over the pass.', ''] + \
        table(['Arch', 'Size', 'Precision', 'Latency (ms)', 'Peak memory (MiB)'], rows)


def write_random_vgg19(path, seed=0):
    """Save torchvision's ``vgg19(weights=None)`` feature layers (``features.*``, the layout
    of its ImageNet file; the classifier, which no loss reads, left out) to ``path``: for
    timing StripformerLoss without the ImageNet weights, which are never downloaded."""
    import torchvision
    torch.manual_seed(seed)
    features = torchvision.models.vgg19(weights=None).features
    torch.save({f'features.{key}': value for key, value in features.state_dict().items()}, path)
    return path


def training_opt(path, precision, device, arch_args, quick, root):
    """The recipe's options for a few in-process steps on ``device``."""
    from basicsr_sgenet.integration.options import load_options
    from basicsr_sgenet.tools.training_memory import recipe_batch_and_crop
    opt = load_options(path)
    arch = opt['network_g']['type']
    opt['network_g'].update(arch_args.get(arch, {}))
    progressive = opt['train'].pop('progressive', None)
    if quick:
        batch, crop = QUICK['batch'], QUICK['crop']
    elif progressive:  # its last stage: the largest crop
        sizes = progressive.get('total_mini_batch_sizes') or [b * PAPER_GPUS for b in progressive['mini_batch_sizes']]
        batch, crop = max(sizes[-1] // PAPER_GPUS, 1), progressive['gt_sizes'][-1]
    else:
        total, crop = recipe_batch_and_crop(opt)
        batch = max(total // PAPER_GPUS, 1)
    opt['train']['mixed_precision'] = precision
    opt['train'].pop('accumulate', None)
    pixel_opt = opt['train'].get('pixel_opt') or {}
    if pixel_opt.get('vgg19_weights') and not os.path.isfile(pixel_opt['vgg19_weights']):
        # Stripformer's contrastive term: random VGG19 weights cost the same time as ImageNet's.
        vgg = os.path.join(root, 'random_vgg19.pth')
        pixel_opt['vgg19_weights'] = vgg if os.path.isfile(vgg) else write_random_vgg19(vgg)
    experiments = os.path.join(root, opt['name'])
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False,
               num_gpu=1 if device.type == 'cuda' else 0)
    opt['path'].update(experiments_root=experiments, models=experiments, training_states=experiments, log=experiments,
                       visualization=experiments, pretrain_network_g=None, resume_state=None)
    opt.pop('val', None)
    return opt, batch, crop


def training_section(report, device, settings, arch_args, quick):
    import logging

    from basicsr.models import build_model
    from basicsr.utils import get_root_logger

    from basicsr_sgenet.tools.profiling import _peak_memory, _synchronize
    get_root_logger(log_level=logging.ERROR)  # the model build would print the network
    rows = []
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as root:
        for path in recipe_files():
            for precision in ('fp32', 'bf16', 'fp16'):
                name = os.path.basename(path)
                if not report.has_time(f'training {name} {precision}'):
                    continue
                model, batch, crop = None, '', ''
                try:
                    precision_settings('fp32', device)
                    opt, batch, crop = training_opt(path, precision, device, arch_args, quick, root)
                    model = build_model(opt)
                    generator = torch.Generator().manual_seed(0)
                    data = {'lq': torch.rand(batch, 3, crop, crop, generator=generator),
                            'gt': torch.rand(batch, 3, crop, crop, generator=generator)}
                    model.feed_data(data)
                    for iteration in range(1, settings['warmup'] + 1):
                        model.optimize_parameters(iteration)
                    with _peak_memory(device, above_resident=False) as peak:
                        _synchronize(device)
                        started = time.perf_counter()
                        for iteration in range(settings['steps']):
                            model.optimize_parameters(settings['warmup'] + 1 + iteration)
                        _synchronize(device)
                        seconds = (time.perf_counter() - started) / settings['steps']
                    loss = model.get_current_log().get('l_total')
                    cells = [f'{1 / seconds:.2f}', f'{peak.mib:.0f}' if peak.mib is not None else 'n/a',
                             f'{loss:.4g}' if loss is not None else '']
                except UserError as err:  # e.g. bf16 on a CPU without native bf16
                    cells = [f'refused: {err}', '', '']
                except Exception as err:  # noqa: BLE001 -- one row says what failed
                    cells = [failure(err), '', '']
                finally:
                    del model
                    release(device)
                rows.append([name, precision, batch, crop] + cells)
    return [f'{settings["warmup"]} untimed then {settings["steps"]} timed optimizer steps per row, in this process, '
            'on random batches already on the device (data loading excluded). Batch: the recipe\'s per-GPU batch on '
            f'{PAPER_GPUS} GPUs (progressive recipes: their last stage). Peak memory: CUDA max allocated over the '
            'timed steps; CPU: rise of the peak resident set.', ''] + \
        table(['Recipe', 'Precision', 'Batch', 'Crop', 'it/s', 'Peak memory (MiB)', 'Loss'], rows)


def tiled_section(report, device, settings, arch_args):
    from basicsr_sgenet.inference.network import size_multiple
    from basicsr_sgenet.inference.tiling import count_tiles, tiled_forward
    from basicsr_sgenet.integration.precision import autocast
    from basicsr_sgenet.tools.profiling import _peak_memory, _synchronize
    height, width = settings['image_4k']
    tile, overlap = settings['tile'], settings['overlap']
    image = torch.rand(1, 3, height, width)
    rows = []
    precision_settings('fp32', device)
    for arch in plugin_archs():
        if not report.has_time(f'tiled {arch}'):
            continue
        network = None
        try:
            network = build(arch, arch_args, device)
            multiple = size_multiple(network)
            # Tiles and overlaps stay on each arch's downsampling grid (FFTformer's is 32).
            arch_tile, arch_overlap = (-(-value // multiple) * multiple for value in (tile, overlap))

            def forward(piece, network=network):
                from basicsr_sgenet.archs.arch_util import final_image
                with torch.inference_mode(), autocast(device, 'fp32'):
                    return final_image(network(piece.to(device)))

            with _peak_memory(device, above_resident=False) as peak:
                _synchronize(device)
                started = time.perf_counter()
                tiled_forward(forward, image, arch_tile, arch_overlap, multiple)
                _synchronize(device)
                seconds = time.perf_counter() - started
            cells = [count_tiles(height, width, arch_tile, arch_overlap, multiple), f'{seconds:.2f}',
                     f'{peak.mib:.0f}' if peak.mib is not None else 'n/a']
        except Exception as err:  # noqa: BLE001 -- one row says what failed
            cells = ['', failure(err), '']
        finally:
            del network
            release(device)
        rows.append([arch] + cells)
    return [f'{width}x{height} image, tiles of {tile} with overlap {overlap}, fp32, one pass (the first: '
            'includes cuDNN autotuning); tile and overlap rounded up to each arch\'s size multiple.', ''] + table(['Arch', 'Tiles', 'Seconds', 'Peak memory (MiB)'], rows)


# ----------------------------------------------------------------------------- command line

def read_arch_args(path):
    """``{arch: {argument: value}}`` from a YAML file (reduced widths for quick runs)."""
    if not path:
        return {}
    import yaml
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise CheckError(f'--arch-args {path}: {first_line(err)}') from None
    if not isinstance(data, dict) or not all(isinstance(value, dict) for value in data.values()):
        raise CheckError(f'--arch-args {path} must map each arch name to a mapping of its arguments')
    return data


def pick_device(name):
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise CheckError(f'--device {name}: {first_line(err)}') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise CheckError(f'--device {name}: no CUDA GPU is visible (use --device cpu --quick to try the steps)')
        if device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            raise CheckError(f'--device {name}: only {torch.cuda.device_count()} GPU(s) visible')
        torch.cuda.set_device(device)
    elif device.type != 'cpu':
        raise CheckError(f'--device {name}: use cuda, cuda:N or cpu')
    return device


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='markdown report to write (rewritten after each section)')
    parser.add_argument('--device', default='cuda', help='cuda, cuda:N or cpu (default: cuda)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes, one step per row: proves the steps run (CI runs it on the CPU)')
    parser.add_argument('--budget', type=float, default=BUDGET_SECONDS,
                        help=f'seconds; measurements that would start later are listed as skipped '
                             f'(default {BUDGET_SECONDS}: the whole check ends within 8 minutes)')
    parser.add_argument('--arch-args', help='YAML {arch: {argument: value}} applied to every network built '
                                            '(e.g. reduced widths for --quick on a CPU)')
    parser.add_argument('--compile-backend', default='inductor',
                        help='torch.compile backend of the compiled rows (default inductor)')
    return parser


def run_check(args):
    device = pick_device(args.device)
    arch_args = read_arch_args(args.arch_args)
    settings = dict(QUICK if args.quick else FULL)
    if os.path.isdir(args.out):
        raise CheckError(f'--out {args.out} is a folder; give a file name')
    report = Report(args.out, args.budget)
    report.add('Device', device_section(device))
    report.add('Collectives', collective_section(device))
    report.add('Estimated training memory per recipe', memory_section(device, arch_args))
    report.add('Inference, eager', latency_section(report, device, settings, arch_args))
    report.add('Training steps per recipe', training_section(report, device, settings, arch_args, args.quick))
    report.add('Tiled 4K deblurring' if not args.quick else 'Tiled deblurring (quick: a small image)',
               tiled_section(report, device, settings, arch_args))
    report.add('Inference, compiled', latency_section(report, device, settings, arch_args, compiled=True,
                                                      compile_backend=args.compile_backend))
    report.write(finished=True)
    print(f'gpu_check: report written to {args.out} ({report.elapsed():.0f} s)', flush=True)
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return exit_on_user_error(run_check, args)


if __name__ == '__main__':
    sys.exit(main())
