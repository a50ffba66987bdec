"""basicsr_sgenet/tools/compare.py (scripts/compare.py) and the BasicSR log parser on synthetic log
files, and on a real tiny training run whose network was changed by --force_yml."""
import shutil

import pytest
import torch
import yaml
from basicsr.archs import build_network

from basicsr_sgenet.tools import compare
from basicsr_sgenet.tools.experiment_logs import parse_log_text
from conftest import run_python
from tiny_experiment import TINY_SGENET, training_options, write_options, write_pairs

OPTIONS_DUMP = """2024-05-01 10:30:00,002 INFO: 
  name: {name}
  model_type: SGENetModel
  network_g:[
    type: SGENet
    channels: [8, 12, 16]
    num_rdm: 1
  ]
  val:[
    save_img: False
  ]

"""
TEST_LOG = OPTIONS_DUMP + """2024-05-01 10:30:01,000 INFO: Testing GoPro...
2024-05-01 10:40:00,000 INFO: Validation GoPro
\t # psnr_matlab: 30.1234\tBest: 30.1234 @ tiny_test iter
\t # ssim_matlab: 0.9012\tBest: 0.9012 @ tiny_test iter

2024-05-01 10:50:00,000 INFO: Validation HIDE
\t # psnr_matlab: 28.5000\tBest: 28.5000 @ tiny_test iter
\t # ssim_matlab: 0.8800\tBest: 0.8800 @ tiny_test iter

"""
TRAIN_LOG = OPTIONS_DUMP + "".join(
    f"""2024-05-01 09:{i}0:00,000 INFO: [tiny_..][epoch:{i:3d}, iter:{i * 1000:8,d}, lr:(2.000e-04,)] l_pix: 1.0e-02 
2024-05-01 09:{i}0:05,000 INFO: Validation GoPro
\t # psnr: {psnr:.4f}\tBest: {psnr:.4f} @ {i * 1000} iter
\t # ssim: 0.8000\tBest: 0.8000 @ {i * 1000} iter

""" for i, psnr in ((1, 25.0), (2, 26.5), (3, 26.2)))


@pytest.fixture
def experiments(tmp_path):
    test_dir = tmp_path / 'results' / 'tiny_test'
    train_dir = tmp_path / 'experiments' / 'tiny_train'
    test_dir.mkdir(parents=True)
    train_dir.mkdir(parents=True)
    (test_dir / 'test_tiny_test_20240501_103000.log').write_text(TEST_LOG.format(name='tiny_test'))
    (train_dir / 'train_tiny_train_20240501_090000.log').write_text(TRAIN_LOG.format(name='tiny_train'))
    return tmp_path


def test_parser_reads_validations_iterations_and_options():
    parsed = parse_log_text(TRAIN_LOG.format(name='x'))
    assert [(v.iteration, v.metrics['psnr']) for v in parsed.validations] == [(1000, 25.0), (2000, 26.5),
                                                                               (3000, 26.2)]
    assert parsed.options['network_g'] == {'type': 'SGENet', 'channels': [8, 12, 16], 'num_rdm': 1}


def test_table_from_folders(experiments, capsys):
    status = compare.main([str(experiments / 'results' / 'tiny_test'), str(experiments / 'experiments' / 'tiny_train'),
                           '--size', '32x32', '--out', str(experiments / 'table.md')])
    assert status == 0
    table = (experiments / 'table.md').read_text()
    assert table in capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith('|')]
    assert lines[0].split('|')[1:-1] == [' Experiment ', ' Dataset ', ' psnr_matlab ', ' ssim_matlab ', ' psnr ',
                                         ' ssim ', ' Validation ', ' Network from ', ' Params (M) ',
                                         ' GMACs @32x32 ', ' Latency @32x32 (ms) ']
    assert '| tiny_test | GoPro | 30.1234 | 0.9012 | – | – |' in table
    assert '| tiny_test | HIDE | 28.5000 | 0.8800 |' in table
    # last validation; the network printed in the log
    assert '| tiny_train | GoPro | – | – | 26.2000 | 0.8000 | iter 3000 | train log | 0.12 |' in table


def test_pick_best_and_option_file_input(experiments, capsys):
    option_file = experiments / 'train_tiny.yml'
    option_file.write_text('name: tiny_train\nnetwork_g:\n  type: SGENet\n  channels: [8, 12, 16]\n  num_rdm: 1\n')
    status = compare.main([str(option_file), '--root', str(experiments), '--pick', 'best', '--no-cost'])
    assert status == 0
    row = '| tiny_train | GoPro | 26.5000 | 0.8000 | iter 2000 | train log | – | – | – |'
    assert row in capsys.readouterr().out


def test_latency_column_when_asked(experiments, capsys):
    status = compare.main([str(experiments / 'results' / 'tiny_test'), '--size', '32x32', '--latency', '--device',
                           'cpu', '--warmup', '0', '--repeats', '1'])
    assert status == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith('| tiny_test | GoPro'))
    assert float(row.strip('|').split('|')[-1]) > 0


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert compare.main([str(tmp_path / 'nothing.txt')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and 'nothing.txt' in err


def params(**network_g):
    return sum(p.numel() for p in build_network({**TINY_SGENET, **network_g}).parameters())


def row_of(output, name):
    return next(line for line in output.splitlines() if line.startswith(f'| {name} |')).strip('|').split('|')


def test_a_run_with_force_yml_is_listed_with_the_network_that_ran(tmp_path, capsys):
    """A real 2-iteration run whose channels come from --force_yml: the copied option file
    names [8, 12, 16], the run (its log and checkpoint) used [8, 8, 8]."""
    write_pairs(tmp_path / 'data', count=2, size=40)
    opt = training_options(tmp_path / 'data', 'forced', total_iter=2, checkpoint_every=2)
    yml = write_options(tmp_path / 'train.yml', opt)
    ran = run_python(['-m', 'basicsr_sgenet.train', '-opt', str(yml), '--force_yml', 'network_g:channels=[8,8,8]'],
                     cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    folder = tmp_path / 'experiments' / 'forced'
    copied = yaml.safe_load(next(folder.glob('*.yml')).read_text())
    assert copied['network_g']['channels'] == [8, 12, 16]  # BasicSR's copy: without the override
    assert params(channels=[8, 8, 8]) != params()

    assert compare.main([str(folder), '--size', '32x32']) == 0
    output = capsys.readouterr().out
    row = row_of(output, 'forced')
    assert row[-4].strip() == 'train log, fits net_g_latest.pth'
    assert float(row[-3]) == round(params(channels=[8, 8, 8]) / 1e6, 2) != round(params() / 1e6, 2)
    assert "says SGENet(channels=[8, 12, 16], num_rdm=1) (a --force_yml override); the logged one ran" in output

    # Without the logged options, the copied file's network does not fit the checkpoint:
    # the parameters come from the checkpoint, the MACs are left out, and the row says so.
    for log in folder.glob('*.log'):
        log.write_text('\n'.join(line for line in log.read_text().splitlines() if 'network_g' not in line
                                 and not line.startswith('    ')))
    assert compare.main([str(folder), '--size', '32x32']) == 0
    output = capsys.readouterr().out
    row = row_of(output, 'forced')
    assert row[-4].strip() == 'net_g_latest.pth (params only)' and row[-2].strip() == '–'
    checkpoint = torch.load(folder / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    assert float(row[-3]) == round(sum(t.numel() for t in checkpoint.values()) / 1e6, 2)
    assert 'does not fit SGENet(channels=[8, 12, 16], num_rdm=1)' in output

    # No log options and no checkpoint: the copied option file, flagged as lacking overrides.
    shutil.rmtree(folder / 'models')
    assert compare.main([str(folder), '--size', '32x32']) == 0
    output = capsys.readouterr().out
    assert row_of(output, 'forced')[-4].strip() == 'option file (no overrides)'
    assert 'no log holds options, so --force_yml overrides, if any, are not seen' in output
