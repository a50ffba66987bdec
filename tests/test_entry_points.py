"""How users start training: this plugin's entry points, and BasicSR's stock ones, which
find SGENet through the auto-load hook installed with the package."""
import os
import shutil
import sys

import basicsr
import pytest

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


def test_stock_basicsr_train_script_runs_sgenet(tmp_path, tiny_options):
    # A user's BasicSR checkout: its basicsr/train.py, with basicsr itself installed.
    stock_script = tmp_path / 'BasicSR' / 'basicsr' / 'train.py'
    stock_script.parent.mkdir(parents=True)
    shutil.copy(os.path.join(os.path.dirname(basicsr.__file__), 'train.py'), stock_script)
    result = run_python([str(stock_script), '-opt', str(tiny_options('stock'))], cwd=tmp_path, PYTHONPATH='')
    assert result.returncode == 0, result.stderr[-3000:]
    assert "No object named 'SGENet'" not in result.stderr
    # Stock BasicSR puts experiments under the checkout's root.
    assert (tmp_path / 'BasicSR' / 'experiments' / 'stock' / 'models' / 'net_g_latest.pth').exists()


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
def test_bad_option_files_get_one_clear_line(tmp_path, content, message):
    path = tmp_path / 'opt.yml'
    if content is not None:
        path.write_text(content)
    result = run_python(['-m', 'basicsr_sgenet.train', '-opt', str(path)], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith('error: Option file') and message in result.stderr
    assert 'Traceback' not in result.stderr
