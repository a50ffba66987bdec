"""scripts/gpu_check.py in its CPU form (``--device cpu --quick``): every step the GPU run
takes, tiny, so the script is known to work before a GPU is lent."""
import re

import yaml

from basicsr_sgenet.tools.gpu_check import plugin_archs, recipe_files
from conftest import REPO_ROOT, run_python
from tiny_archs import TINY_ARCHS

SECTIONS = ('Device', 'Collectives', 'Estimated training memory per recipe', 'Inference, eager',
            'Training steps per recipe', 'Tiled deblurring', 'Inference, compiled')


def test_quick_cpu_check_runs_every_step_and_writes_the_report(tmp_path):
    arch_args = tmp_path / 'tiny.yml'
    arch_args.write_text(yaml.safe_dump(TINY_ARCHS))
    out = tmp_path / 'report.md'
    result = run_python([f'{REPO_ROOT}/scripts/gpu_check.py', '--device', 'cpu', '--quick', '--out', str(out),
                         '--arch-args', str(arch_args), '--compile-backend', 'aot_eager'], cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert report.startswith('# GPU check\n\nfinished in ')
    for section in SECTIONS:
        assert f'\n## {section}' in report
    assert 'gloo initialised in one process, all-reduce correct' in report
    assert 'Skipped' not in report and 'failed:' not in report, report
    rows = [line for line in report.splitlines() if line.startswith('| ') and not line.startswith('| Arch |')]
    for arch in plugin_archs():
        for precision in ('fp32', 'bf16', 'fp16'):
            assert any(line.startswith(f'| {arch} | 32x32 | {precision} |') for line in rows), (arch, precision)
    for recipe in recipe_files():
        name = recipe.rsplit('/', 1)[-1]
        for precision in ('fp32', 'bf16', 'fp16'):
            row = next(line for line in rows if line.startswith(f'| {name} | {precision} |'))
            # it/s is a number, or bf16 is refused on a CPU without native bf16.
            assert re.match(rf'\| {re.escape(name)} \| {precision} \| 2 \| 32 \| [\d.]+ \|', row) or \
                (precision == 'bf16' and 'refused: ' in row), row


def test_missing_gpu_is_one_error_line(tmp_path):
    import torch
    if torch.cuda.is_available():
        return
    result = run_python([f'{REPO_ROOT}/scripts/gpu_check.py', '--out', str(tmp_path / 'r.md')], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == 'error: --device cuda: no CUDA GPU is visible (use --device cpu --quick to try the steps)\n'
    assert not (tmp_path / 'r.md').exists()
