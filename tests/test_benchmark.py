"""scripts/benchmark.py end to end on tiny networks and inputs (2-core machine)."""
import json

import pytest
from script_loader import load_script

from basicsr_sgenet.inference.network import NetworkSpec
from basicsr_sgenet.profiling import count_macs

benchmark = load_script('benchmark')
TINY_SGENET = 'SGENet:' + json.dumps({'channels': [8, 12, 16], 'num_rdm': 1})


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
    assert row['Mode'] == 'eager' and row['Device'] == 'cpu' and row['Timed runs'] == '1'
    assert float(row['Params (M)']) == pytest.approx(0.12, abs=0.01)
    assert float(row['GMACs']) > 0 and float(row['Latency median (ms)']) > 0
    assert 'Machine: CPU:' in out.read_text()
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


def test_preset_lists_basicsr_archs():
    labels = [label for label, _ in benchmark.collect_specs(benchmark.build_parser().parse_args(['--preset',
                                                                                                'basicsr']))]
    assert labels[0] == 'SGENet (paper)' and any('SwinIR' in label for label in labels)


@pytest.mark.parametrize('args, message', [(['--precisions', 'fp16', '--device', 'cpu'], 'fp16'),
                                           (['--sizes', '32by32'], 'HEIGHTxWIDTH'),
                                           (['--model', 'NoSuchNet'], 'Unknown arch'),
                                           (['--model', 'SGENet:{"channels": 3}'], 'channels')])
def test_bad_input_gives_one_error_line(capsys, args, message):
    status = benchmark.main(args + ['--macs-only'])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and err[-1].startswith('error:') and message in err[-1]
