"""scripts/benchmark.py (basicsr_sgenet/tools/benchmark.py) end to end on tiny networks and
inputs (2-core machine): every backend side by side, tiles, PSNR, the bf16 refusal."""
import json

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import REPO_ROOT, run_python

from basicsr_sgenet.tools import benchmark

from basicsr_sgenet.integration import precision
from basicsr_sgenet.inference.network import NetworkSpec
from basicsr_sgenet.tools.profiling import count_macs

TINY_SGENET_ARGS = {'channels': [8, 12, 16], 'num_rdm': 1}
TINY_SGENET = 'SGENet:' + json.dumps(TINY_SGENET_ARGS)


def table_rows(text):
    lines = [line for line in text.splitlines() if line.startswith('|')]
    header = [cell.strip() for cell in lines[0].strip('|').split('|')]
    return header, [dict(zip(header, (cell.strip() for cell in line.strip('|').split('|')))) for line in lines[2:]]


def test_end_to_end_on_a_tiny_sgenet(tmp_path, capsys):
    out = tmp_path / 'results.md'
    status = benchmark.main(['--model', TINY_SGENET, '--sizes', '32x32', '--precisions', 'fp32', '--repeats', '1',
                             '--warmup', '0', '--device', 'cpu', '--threads', '1', '--out', str(out)])
    assert status == 0
    captured = capsys.readouterr()
    header, rows = table_rows(out.read_text())
    assert header == benchmark.COLUMNS
    assert out.read_text() in captured.out  # the same table on stdout
    assert len(rows) == 1
    row = rows[0]
    assert row['Model'].startswith('SGENet') and row['Input'] == '32x32' and row['Precision'] == 'fp32'
    assert row['Backend'] == 'eager' and row['Device'] == 'cpu' and row['Timed runs'] == '1'
    assert row['Speed-up'] == '1.00x' and row['Max abs diff'] == '0.0e+00'
    assert float(row['Params (M)']) == pytest.approx(0.12, abs=0.01)
    assert float(row['GMACs']) > 0 and float(row['Latency median (ms)']) > 0
    assert 'Machine: CPU:' in out.read_text() and 'native bf16: ' in out.read_text()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert 'matplotlib is not installed' in captured.err
    else:
        assert (tmp_path / 'results.png').is_file()


def test_macs_are_flops_over_two_of_the_convolutions():
    # SRVGGNetCompact at 1x, 4 features, 1 body conv: three 3x3 convolutions
    # 3->4, 4->4, 4->3 on 32x32 (pixel shuffle and the bilinear base are not counted).
    spec = NetworkSpec('SRVGGNetCompact_basicsr', dict(num_in_ch=3, num_out_ch=3, num_feat=4, num_conv=1,
                                                       upscale=1))
    macs, counted_on = count_macs(spec, 32, 32)
    assert counted_on == 'meta'
    assert macs == 32 * 32 * 9 * (3 * 4 + 4 * 4 + 4 * 3)


def test_macs_only_needs_no_compute(capsys):
    status = benchmark.main(['--model', TINY_SGENET, '--sizes', '720x1280', '--macs-only', '--device', 'cpu'])
    assert status == 0
    _, rows = table_rows(capsys.readouterr().out)
    assert rows[0]['Latency median (ms)'] == '–' and float(rows[0]['GMACs']) > 10


def test_presets_list_their_archs():
    def archs(preset):
        args = benchmark.build_parser().parse_args(['--preset', preset])
        return [spec.arch for _, spec in benchmark.collect_specs(args)]

    assert archs('basicsr')[0] == 'SGENet' and 'SwinIR' in archs('basicsr')
    assert archs('deblur') == ['SGENet', 'MPRNet', 'MIMOUNet', 'MIMOUNetPlus', 'NAFNet', 'Restormer', 'MLWNet',
                               'FFTformer', 'Stripformer']


def test_script_runs_as_a_program():
    result = run_python(['scripts/benchmark.py', '--model', TINY_SGENET, '--sizes', '16x16', '--macs-only'],
                        cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert '| SGENet' in result.stdout and 'native bf16: ' in result.stdout


def test_backends_are_timed_side_by_side_with_their_difference(capsys):
    pytest.importorskip('onnxruntime')
    status = benchmark.main(['--model', TINY_SGENET, '--sizes', '24x40', '--precisions', 'fp32', '--backends',
                             'eager,channels_last,onnxruntime', '--repeats', '2', '--warmup', '1', '--device', 'cpu',
                             '--threads', '1'])
    assert status == 0
    _, rows = table_rows(capsys.readouterr().out)
    assert [row['Backend'] for row in rows] == ['eager', 'channels_last', 'onnxruntime']
    for row in rows:
        assert float(row['Latency median (ms)']) > 0 and row['Speed-up'].endswith('x') and row['Timed runs'] == '2'
        assert float(row['Max abs diff']) < 1e-5  # fp32 everywhere: rounding only


def test_an_arch_without_onnx_export_is_timed_in_pytorch_and_its_onnx_row_says_why(capsys):
    pytest.importorskip('onnxruntime')
    tiny_fftformer = 'FFTformer:' + json.dumps({'dim': 4, 'num_blocks': [1, 1, 1], 'num_refinement_blocks': 1})
    status = benchmark.main(['--model', tiny_fftformer, '--sizes', '24x40', '--precisions', 'fp32', '--backends',
                             'eager,channels_last,onnxruntime', '--repeats', '1', '--warmup', '0', '--device', 'cpu',
                             '--threads', '1'])
    assert status == 0
    _, rows = table_rows(capsys.readouterr().out)
    _, channels_last, onnxruntime = rows
    assert float(channels_last['Latency median (ms)']) > 0 and float(channels_last['Max abs diff']) < 1e-5
    assert 'aten::fft_rfft2' in ' '.join(onnxruntime.values()) and onnxruntime['Timed runs'] == '–'


def test_tiled_sizes_run_as_the_deblur_cli_tiles_them(capsys, native_bf16):
    status = benchmark.main(['--model', TINY_SGENET, '--sizes', '16x16,40x72', '--configs',
                             'fp32:eager,bf16:channels_last', '--tile', '32', '--tile-overlap', '16', '--repeats', '1',
                             '--warmup', '0', '--device', 'cpu'])
    assert status == 0
    _, rows = table_rows(capsys.readouterr().out)
    assert [(row['Input'], row['Precision'], row['Backend']) for row in rows] == [
        ('16x16', 'fp32', 'eager'), ('16x16', 'bf16', 'channels_last'),
        ('40x72 (8 tiles)', 'fp32', 'eager'), ('40x72 (8 tiles)', 'bf16', 'channels_last')]  # 2 x 4 tiles


def test_bf16_rows_name_the_missing_capability_and_the_run_goes_on(capsys, monkeypatch):
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: False)  # an AVX2-only CPU, simulated
    status = benchmark.main(['--model', TINY_SGENET, '--sizes', '16x16', '--repeats', '1', '--warmup', '0',
                             '--device', 'cpu'])  # the default precisions: fp32,bf16
    assert status == 0
    out = capsys.readouterr().out
    _, rows = table_rows(out)
    fp32, bf16 = rows
    assert fp32['Precision'] == 'fp32' and float(fp32['Latency median (ms)']) > 0
    assert bf16['Precision'] == 'bf16' and bf16['Timed runs'] == '–'
    assert bf16['Latency median (ms)'].startswith('skipped: this CPU has no native bf16 (')
    assert 'kernels, native bf16: no' in bf16['Latency median (ms)'] and 'native bf16: no' in out


def test_psnr_on_image_pairs_with_trained_weights(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / 'w.pth'
    torch.save(ARCH_REGISTRY.get('SGENet')(**TINY_SGENET_ARGS).state_dict(), weights)
    for folder in ('blur', 'sharp'):
        (tmp_path / folder).mkdir()
    rng = np.random.default_rng(0)
    for name in ('a.png', 'b.png'):
        sharp = (rng.random((20, 28, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / 'sharp' / name), sharp)
        cv2.imwrite(str(tmp_path / 'blur' / name), cv2.GaussianBlur(sharp, (5, 5), 1))
    pairs = f'{tmp_path / "blur"}:{tmp_path / "sharp"}'
    status = benchmark.main(['--model', TINY_SGENET, '--weights', str(weights), '--psnr-on', pairs, '--sizes', '16x16',
                             '--precisions', 'fp32', '--backends', 'eager,channels_last', '--repeats', '1',
                             '--warmup', '0', '--device', 'cpu'])
    assert status == 0
    _, rows = table_rows(capsys.readouterr().out)
    assert 5 < float(rows[0]['PSNR (dB)']) < 60 and rows[0]['ΔPSNR (dB)'] == '+0.000'
    assert abs(float(rows[1]['ΔPSNR (dB)'])) < 0.01


@pytest.mark.parametrize('args, message', [(['--precisions', 'fp16', '--device', 'cpu'], 'fp16'),
                                           (['--backends', 'eager,tensorrt'], 'tensorrt'),
                                           (['--configs', 'fp32-eager'], 'PRECISION:BACKEND'),
                                           (['--weights', 'w.pth', '--preset', 'deblur'], 'exactly one network'),
                                           (['--sizes', '32by32'], 'HEIGHTxWIDTH'),
                                           (['--model', 'NoSuchNet'], 'Unknown arch'),
                                           (['--model', 'SGENet:{"channels": 3}'], 'channels')])
def test_bad_input_gives_one_error_line(capsys, args, message):
    status = benchmark.main(args + ['--macs-only'])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err[-1].startswith('error:') and message in err[-1]


def test_each_configuration_gets_its_own_copy_of_the_network():
    from basicsr_sgenet.tools.profiling import prepare_runner
    network = ARCH_REGISTRY.get('SGENet')(**TINY_SGENET_ARGS).eval()
    run = prepare_runner(network, 'fp32', 'channels_last', torch.device('cpu'))
    run(torch.rand(1, 3, 16, 16))
    conv = network.stage1_shallow.weight
    assert conv.is_contiguous() and not conv.is_contiguous(memory_format=torch.channels_last)  # eager's stays NCHW
