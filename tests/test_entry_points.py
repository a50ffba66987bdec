"""How users start training: this plugin's entry points, and BasicSR's stock ones, which
find SGENet through the auto-load hook installed with the package."""
import os
import re
import shutil
import sys

import basicsr
import pytest

from basicsr_sgenet.integration.pipeline import run_pipeline
from basicsr_sgenet.integration.options import check_options, read_option_file

from conftest import REPO_ROOT, run_python
from tiny_experiment import training_options, write_options, write_pairs


def test_autoload_hook_costs_nothing_at_startup_and_registers_on_import_basicsr():
    code = ('import sys; assert "torch" not in sys.modules, "hook imported torch at start-up"\n'
            'import basicsr\n'
            'from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY\n'
            'print("SGENet" in ARCH_REGISTRY, "MultiScaleCharbonnierEdgeLoss" in LOSS_REGISTRY,'
            ' "SGENetModel" in MODEL_REGISTRY)\n')
    # Not from the repository root: the installed package and its .pth must do this alone.
    result = run_python(['-c', code], cwd='/', PYTHONPATH='')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'True', 'True']


def test_autoload_survives_a_find_spec_probe_before_import():
    code = ('import importlib.util; assert importlib.util.find_spec("basicsr") is not None\n'
            'import basicsr; from basicsr.utils.registry import ARCH_REGISTRY; print("SGENet" in ARCH_REGISTRY)\n'
            'import importlib.resources; print(importlib.resources.files("basicsr").joinpath("version.py").is_file())')
    result = run_python(['-c', code], cwd='/', PYTHONPATH='')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'True']


def test_a_broken_plugin_leaves_stock_basicsr_usable(tmp_path):
    # The plugin with a bug in one of its archs: registering fails half-way.
    broken = tmp_path / 'basicsr_sgenet'
    shutil.copytree(os.path.join(REPO_ROOT, 'basicsr_sgenet'), broken, ignore=shutil.ignore_patterns('__pycache__'))
    (broken / 'archs' / 'sgenet_arch.py').write_text('raise RuntimeError("plugin bug")\n')
    result = run_python(['-c', 'import basicsr; print(basicsr.__version__)'], cwd='/', PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '1.4.2'
    assert 'basicsr-sgenet could not be loaded (RuntimeError: plugin bug)' in result.stderr


def test_autoload_can_be_switched_off():
    code = 'import basicsr_sgenet_autoload, sys; print(any(type(f).__name__ == "BasicSRImportHook" for f in sys.meta_path))'
    assert run_python(['-c', code], cwd='/', PYTHONPATH='').stdout.strip() == 'True'
    off = run_python(['-c', code], cwd='/', PYTHONPATH='', BASICSR_SGENET_AUTOLOAD='0')
    assert off.stdout.strip() == 'False'


@pytest.fixture
def tiny_options(tmp_path):
    write_pairs(tmp_path / 'data', count=2, size=40)
    return lambda name: write_options(tmp_path / f'{name}.yml', training_options(
        tmp_path / 'data', name, total_iter=2, checkpoint_every=2, validate=False))


def test_stock_basicsr_train_script_runs_sgenet_and_resumes_on_cpu(tmp_path):
    # A user's BasicSR checkout: its basicsr/train.py, with basicsr itself installed.
    stock_script = tmp_path / 'BasicSR' / 'basicsr' / 'train.py'
    stock_script.parent.mkdir(parents=True)
    shutil.copy(os.path.join(os.path.dirname(basicsr.__file__), 'train.py'), stock_script)
    write_pairs(tmp_path / 'data', count=2, size=40)
    opt = training_options(tmp_path / 'data', 'stock', total_iter=4, checkpoint_every=2, validate=False)
    opt['train']['total_iter'] = 2  # first run stops half-way through the 4-iteration schedule
    # Plugin keys work there too: total_batch_size instead of batch_size_per_gpu.
    opt['datasets']['train']['total_batch_size'] = opt['datasets']['train'].pop('batch_size_per_gpu')
    yml = write_options(tmp_path / 'stock.yml', opt)

    first = run_python([str(stock_script), '-opt', str(yml)], cwd=tmp_path, PYTHONPATH='')
    assert first.returncode == 0, first.stderr[-3000:]
    assert "No object named 'SGENet'" not in first.stderr
    # Stock BasicSR puts experiments under the checkout's root.
    models = tmp_path / 'BasicSR' / 'experiments' / 'stock' / 'models'
    assert (models / 'net_g_latest.pth').exists()

    opt['train']['total_iter'] = 4
    write_options(yml, opt)
    resumed = run_python([str(stock_script), '-opt', str(yml), '--auto_resume'], cwd=tmp_path / 'BasicSR',
                         PYTHONPATH='')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (models / 'net_g_4.pth').exists()
    log = sorted((tmp_path / 'BasicSR' / 'experiments' / 'stock').glob('train_stock_*.log'))[-1].read_text()
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', log)


@pytest.mark.parametrize('how', ['file', 'console_script'])
def test_plugin_entry_points_write_under_the_current_directory(tmp_path, tiny_options, how):
    if how == 'file':
        command = [os.path.join(REPO_ROOT, 'basicsr_sgenet', 'train.py')]
    else:
        script = shutil.which('sgenet-train', path=os.path.dirname(sys.executable))
        if script is None:
            pytest.skip('sgenet-train is not installed next to this interpreter')
        command = [script]
    result = run_python(command + ['-opt', str(tiny_options(how))], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / 'experiments' / how / 'models' / 'net_g_latest.pth').exists()
    assert any((tmp_path / 'tb_logger' / how).glob('events.out.tfevents.*'))


@pytest.mark.parametrize('content, message', [
    (None, 'does not exist'),
    ('name: [unclosed', 'is not valid YAML'),
    ('model_type: SGENetModel\n', 'has no "name" key'),
    ('name: x\nmodel_type: SGENetModel\nnetwork_g: {type: SGENet2}\n', "network_g.type is 'SGENet2'"),
])
def test_bad_option_files_get_one_clear_line(tmp_path, content, message, capsys):
    path = tmp_path / 'opt.yml'
    if content is not None:
        path.write_text(content)
    with pytest.raises(SystemExit) as exit_:
        run_pipeline('train', ['-opt', str(path)])
    error = capsys.readouterr().err
    assert exit_.value.code == 2
    assert error.startswith(f'error: Option file {path}') and message in error and error.count('\n') == 1


def test_option_files_in_basicsr_s_own_dialect_pass_the_check(tmp_path):
    path = tmp_path / 'opt.yml'
    path.write_text('name: x\nmodel_type: SRModel\nnetwork_g: {type: SRVGGNetCompact, num_feat: 4}\n'
                    'train: {optim_g: {lr: !!float 2e-4, betas: !!seq [0.9, 0.99]}, total_iter: 10}\n')
    opt = read_option_file(str(path))
    assert check_options(opt, str(path))['network_g']['type'] == 'SRVGGNetCompact'
    assert opt['train']['optim_g']['lr'] == 2e-4 and opt['train']['optim_g']['betas'] == [0.9, 0.99]


def test_force_yml_is_applied_before_the_checks(tmp_path, capsys):
    path = tmp_path / 'opt.yml'
    path.write_text('name: x\nmodel_type: SGENetModel\nnetwork_g: {type: SGENet}\n')
    with pytest.raises(SystemExit):
        run_pipeline('train', ['-opt', str(path), '--force_yml', 'network_g:type=Unregistered'])
    assert "network_g.type is 'Unregistered'" in capsys.readouterr().err


def test_a_bad_option_file_from_the_command_line_is_one_line(tmp_path):
    result = run_python(['-m', 'basicsr_sgenet.train', '-opt', str(tmp_path / 'missing.yml')], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith('error: Option file') and 'Traceback' not in result.stderr


def test_stock_python_m_basicsr_train_writes_under_the_current_directory(tmp_path, tiny_options):
    site_packages = os.path.dirname(os.path.dirname(basicsr.__file__))
    before = set(os.listdir(site_packages))
    result = run_python(['-m', 'basicsr.train', '-opt', str(tiny_options('stock_m'))], cwd=tmp_path, PYTHONPATH='')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'writing experiments/, results/ and tb_logger/ under the current directory' in result.stdout
    assert (tmp_path / 'experiments' / 'stock_m' / 'models' / 'net_g_latest.pth').exists()
    assert any((tmp_path / 'tb_logger' / 'stock_m').glob('events.out.tfevents.*'))
    assert set(os.listdir(site_packages)) == before, 'nothing written into site-packages'
