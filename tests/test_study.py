"""The study runner: study files, runs through BasicSR's trainer, stopping and resuming,
and the report (table and plot)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from basicsr_sgenet.integration.errors import StudyError
from basicsr_sgenet.tools.study import read_study, run_options
from basicsr_sgenet.tools.study.report import render_table, summarize, write_report
from basicsr_sgenet.tools.study.runner import PlannedRun
from basicsr_sgenet.tools.training_budget import stretch_schedule
from conftest import REPO_ROOT, python_env, run_python

STUDY_SCRIPT = os.path.join(REPO_ROOT, 'scripts', 'study.py')
BASE = os.path.join(REPO_ROOT, 'options', 'train_SGENet_GoPro.yml')


def tiny_study(iters=2, val_every=2, **changes):
    """A study of two tiny variants on tiny synthetic data: seconds per run."""
    study = {
        'name': 'tiny',
        'description': 'a test study',
        'base': BASE,
        'seeds': [0, 1],
        'budget': {'iters': iters, 'val_every': val_every, 'print_every': 1},
        'data': {'synthetic': {'train_photos': ['astronaut', 'coffee'], 'test_photos': ['chelsea'],
                               'train_frames_per_photo': 1, 'test_frames_per_photo': 1,
                               'train_frame_size': [48, 64], 'test_frame_size': [40, 48]},
                 'grid': {'crop_size': 32, 'step': 16}},
        'overrides': {'network_g.channels': [8, 8, 8], 'network_g.num_rdm': 1, 'datasets.train.gt_size': 16,
                      'datasets.train.total_batch_size': 2, 'datasets.train.num_worker_per_gpu': 0,
                      'train.warmup_iter': -1, 'val.metrics.psnr_matlab': None, 'val.metrics.ssim_matlab': None,
                      'logger.use_tb_logger': False, 'dist_params': None},
        'variants': [{'name': 'full', 'description': 'as is'},
                     {'name': 'no_csam', 'overrides': {'network_g.use_csam': False}}],
    }
    study.update(changes)
    return study


def write_study(path, study):
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return str(path)


def run_study(study_file, *args, timeout=240):
    return run_python([STUDY_SCRIPT, study_file, *args], timeout=timeout)


# ----------------------------------------------------------------------------- study files

def test_study_file_is_read_with_variants_seeds_and_budget(tmp_path):
    study = read_study(write_study(tmp_path / 's.yml', tiny_study()))
    assert [variant.name for variant in study.variants] == ['full', 'no_csam']
    assert study.seeds == [0, 1] and study.budget.iters == 2 and study.base == BASE
    opt = run_options(study, study.variants[1], 1, dataset_root='/data')
    assert opt['name'] == 'tiny_no_csam_s1' and opt['manual_seed'] == 1
    assert opt['network_g'] == {'type': 'SGENet', 'channels': [8, 8, 8], 'num_rdm': 1, 'use_csam': False}
    assert set(opt['val']['metrics']) == {'psnr', 'ssim'}  # ~ removed the two MATLAB metrics
    assert opt['train']['scheduler']['periods'] == [2] and opt['train']['total_iter'] == 2
    assert opt['datasets']['val']['dataroot_lq'] == '/data/test/blur.lmdb'
    assert 'dist_params' not in opt


def test_schedule_is_stretched_to_the_budget_keeping_its_shape():
    train = {'total_iter': 300000, 'scheduler': {'periods': [92000, 208000], 'eta_mins': [3e-4, 1e-6]},
             'progressive': {'iters': [150000, 150000]}}
    stretch_schedule(train, 3000)
    assert train['total_iter'] == 3000 and train['scheduler']['periods'] == [920, 2080]
    assert train['progressive']['iters'] == [1500, 1500]
    steps = {'total_iter': 1000, 'scheduler': {'milestones': [500, 750]}}
    stretch_schedule(steps, 100)
    assert steps['scheduler']['milestones'] == [50, 75]


BAD_STUDIES = [
    ({'seeds': []}, 'seeds must be a non-empty list'),
    ({'seeds': [0, 0]}, 'seeds repeats a seed'),
    ({'budget': {'iters': 0}}, 'budget.iters must be a positive integer'),
    ({'budget': {'iters': 10, 'val_every': 5, 'print_every': 2}}, 'budget.val_every (5) must be a multiple'),
    ({'budget': {'iters': 10, 'epochs': 2}}, 'budget has unknown key(s) epochs'),
    ({'variants': []}, 'variants must be a non-empty list'),
    ({'variants': [{'name': 'a'}, {'name': 'a'}]}, "variants[1].name repeats the variant name 'a'"),
    ({'variants': [{'name': 'a b'}]}, 'variants[0].name must be a name'),
    ({'variants': [{'name': 'a', 'overrides': {'network_g..x': 1}}]}, "variants[0].overrides has a bad option key"),
    ({'variants': [{'name': 'a', 'base': 'nowhere.yml'}]}, 'variants[0].base names nowhere.yml, which does not exist'),
    ({'base': 'missing.yml'}, 'base names missing.yml, which does not exist'),
    ({'runs': 3}, 'the top level has unknown key(s) runs'),
    ({'data': {'synthetic': {'train_photos': ['lena']}}}, "data.synthetic: train_photos: unknown photo(s) 'lena'"),
    ({'data': {'synthetic': {'test_photos': ['coffee']}}}, 'test_photos must be held out from train_photos'),
    ({'data': {'grid': {'crop_size': 32}}}, 'data.synthetic is missing'),
]


@pytest.mark.parametrize('changes, message', BAD_STUDIES, ids=[message for _, message in BAD_STUDIES])
def test_bad_study_files_name_the_file_and_key(tmp_path, changes, message):
    path = write_study(tmp_path / 'bad.yml', tiny_study(**changes))
    with pytest.raises(StudyError) as raised:
        read_study(path)
    assert str(raised.value).startswith(f'Study file {path}: ') and message in str(raised.value)


def test_bad_study_is_one_line_and_exit_status_2(tmp_path):
    path = write_study(tmp_path / 'bad.yml', tiny_study(seeds='all'))
    result = run_study(path)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: Study file {path}: seeds must be a non-empty list of integers >= 0, "
                                     "got 'all'.")
    missing = run_study(str(tmp_path / 'none.yml'))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f'error: Study file {tmp_path}/none.yml does not exist.'
    broken = write_study(tmp_path / 'arch.yml', tiny_study(variants=[
        {'name': 'x', 'overrides': {'network_g.cem_skip': 'sideways'}}]))
    result = run_study(broken, '--out', str(tmp_path / 'out'))
    assert result.returncode == 2 and 'variant x: network_g cannot be built' in result.stderr
    assert 'cem_skip' in result.stderr and len(result.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- running

def test_study_runs_end_to_end_and_skips_finished_runs(tmp_path):
    study_file = write_study(tmp_path / 'tiny.yml', tiny_study(seeds=[0]))
    out = tmp_path / 'out'
    first = run_study(study_file, '--out', str(out), '--variants', 'full')
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert '[1/1 full seed 0] iter 1/2' in first.stdout and 'validation at iter 2: psnr' in first.stdout
    assert sorted(os.listdir(out / 'runs')) == ['full']
    table = (out / 'results.md').read_text()
    assert '| full |' in table and 'no_csam |' not in table.split('| variant | what it is')[0]

    second = run_study(study_file, '--out', str(out))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert '[full seed 0] finished earlier: skipped' in second.stdout
    assert '[1/1 no_csam seed 0] training' in second.stdout and 'full seed 0] training' not in second.stdout
    results = json.loads((out / 'results.json').read_text())
    assert sorted((run['variant'], run['seed']) for run in results['runs']) == [('full', 0), ('no_csam', 0)]
    for run in results['runs']:
        assert [v['iteration'] for v in run['validations']] == [2] and 'psnr' in run['final']
    table = (out / 'results.md').read_text()
    assert '| no_csam |' in table and '| (blurred input) |' in table
    plot_message = [line for line in second.stdout.splitlines() if 'val_psnr.png' in line]
    assert plot_message and ('wrote' in plot_message[0] or 'matplotlib is not installed' in plot_message[0])

    # A changed study is refused rather than mixed with the finished runs.
    changed = write_study(tmp_path / 'tiny.yml', tiny_study(seeds=[0], overrides={**tiny_study()['overrides'],
                                                                                   'train.optim_g.lr': 0.01}))
    refused = run_study(changed, '--out', str(out))
    assert refused.returncode == 2 and 'was run with other options' in refused.stderr


def test_stopped_study_resumes_the_interrupted_run_from_its_checkpoint(tmp_path):
    study_file = write_study(tmp_path / 'tiny.yml', tiny_study(iters=40, val_every=2, seeds=[0],
                                                               variants=[{'name': 'full'}]))
    out = tmp_path / 'out'
    states = out / 'runs' / 'full' / 'seed0' / 'experiments' / 'tiny_full_s0' / 'training_states'
    # Ctrl-C must reach the study even where this test runs with SIGINT ignored (as shells
    # start background jobs: Python then keeps ignoring it, and so would the study).
    child = subprocess.Popen([sys.executable, STUDY_SCRIPT, study_file, '--out', str(out)], env=python_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 180
    # The checkpoint at 4 follows the validation at 2 (BasicSR saves, then validates).
    while not (states / '4.state').is_file():
        assert child.poll() is None and time.time() < deadline, 'the run ended before its second checkpoint'
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGINT)  # Ctrl-C
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130 and 'run the same command again to continue' in stderr
    assert stderr.startswith('error: interrupted (Ctrl-C); ') and len(stderr.splitlines()) == 1, stderr
    assert not (out / 'runs' / 'full' / 'seed0' / 'result.json').exists()

    resumed = run_study(study_file, '--out', str(out))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert '[1/1 full seed 0] training 40 iterations (resuming)' in resumed.stdout
    console = (out / 'runs' / 'full' / 'seed0' / 'console.log').read_text()
    assert 'Resuming training from epoch' in console
    result = json.loads((out / 'runs' / 'full' / 'seed0' / 'result.json').read_text())
    assert result['iters'] == 40 and result['validations'][-1]['iteration'] == 40
    iterations = [v['iteration'] for v in result['validations']]
    assert iterations == sorted(set(iterations)) and iterations[0] == 2  # curve kept from before the stop


# ----------------------------------------------------------------------------- the report

def fake_results(tmp_path, study):
    runs = []
    for variant, values in (('full', [30.0, 31.0, 32.0]), ('no_csam', [29.5, 30.5, 31.5])):
        for seed, value in enumerate(values):
            run = PlannedRun(variant, seed, str(tmp_path / variant / str(seed)),
                             {'val': {'metrics': {'psnr': {}, 'ssim': {}}}})
            os.makedirs(run.directory)
            result = {'variant': variant, 'seed': seed, 'iters': 20, 'train_seconds': 60.0 + seed,
                      'final': {'psnr': value, 'ssim': 0.8},
                      'validations': [{'iteration': 10, 'metrics': {'psnr': value - 1, 'ssim': 0.7}},
                                      {'iteration': 20, 'metrics': {'psnr': value, 'ssim': 0.8}}]}
            with open(run.result_path, 'w') as f:
                json.dump(result, f)
            runs.append(run)
    return runs


def test_report_table_has_mean_and_std_over_seeds_costs_and_the_blurred_input(tmp_path):
    study = read_study(write_study(tmp_path / 's.yml', tiny_study()))
    runs = fake_results(tmp_path, study)
    costs = {'full': (322315, 7.16e9), 'no_csam': (300000, 7.0e9)}
    report, plot = write_report(study, str(tmp_path), runs, costs, {'psnr': 28.0, 'ssim': 0.7}, log=lambda *_: None)
    table = open(report).read()
    assert '| full | 31.00 ± 1.00 | 0.8000 ± 0.0000 | +3.00 |  | 3 | 0.322M | 7.16 | 1:01 |' in table
    assert '| no_csam | 30.50 ± 1.00 | 0.8000 ± 0.0000 | +2.50 | -0.50 | 3 |' in table
    assert '| (blurred input) | 28.00 | 0.7000 |' in table
    assert 'machine: ' in table and 'seeds 0, 1' in table
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not os.path.exists(plot)  # skipped with a message
    else:
        assert os.path.getsize(plot) > 1000


@pytest.mark.parametrize('damage', ['{"variant": "full", "se', '[]', '{"variant": "full"}'])
def test_a_damaged_run_result_is_one_error_not_a_missing_seed(tmp_path, damage):
    study = read_study(write_study(tmp_path / 's.yml', tiny_study()))
    runs = fake_results(tmp_path, study)
    with open(runs[1].result_path, 'w') as f:
        f.write(damage)
    with pytest.raises(StudyError, match=f'{runs[1].result_path} is damaged .*it is the result of run full seed 1'):
        write_report(study, str(tmp_path), runs, {'full': (1, 1e9), 'no_csam': (1, 1e9)}, {'psnr': 28.0},
                     log=lambda *_: None)


def test_damaged_run_state_is_one_line_and_a_foreign_output_folder_is_refused(tmp_path):
    study_file = write_study(tmp_path / 's.yml', tiny_study())
    state = tmp_path / 'out' / 'runs' / 'full' / 'seed0' / 'run_state.json'
    state.parent.mkdir(parents=True)
    (tmp_path / 'out' / '.study.json').write_text('{"study": "tiny"}')
    state.write_text('{"seconds": "a while"}')
    done = run_study(study_file, '--out', str(tmp_path / 'out'), '--variants', 'full')
    assert done.returncode == 2 and 'Traceback' not in done.stderr
    assert done.stderr.splitlines() == [f"error: {state} is damaged ('seconds' missing or of the wrong type); it "
                                        'holds the training time of the run so far: delete it to count from zero '
                                        '(the run resumes from its last checkpoint either way)']

    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'results.json').write_text('{"my": "numbers"}')
    done = run_study(study_file, '--out', str(tmp_path / 'mine'))
    assert done.returncode == 2
    assert f'--out: {tmp_path}/mine/results.json exists and was not written by a study' in done.stderr
    assert sorted(os.listdir(tmp_path / 'mine')) == ['results.json']


def test_summary_of_one_seed_has_no_std():
    results = [{'final': {'psnr': 30.0}}]
    assert summarize(results, ['psnr'])['psnr'] == (30.0, None, 1)


def test_table_marks_variants_without_results(tmp_path):
    study = read_study(write_study(tmp_path / 's.yml', tiny_study()))
    table = render_table(study, ['full', 'no_csam'], {'full': [], 'no_csam': []},
                         {'full': (1, 1e9), 'no_csam': (1, 1e9)}, {'psnr': 28.0}, ['psnr'])
    assert '| full | not run yet |' in table


# ----------------------------------------------------------------------------- the shipped studies

SHIPPED = sorted(os.path.join(REPO_ROOT, 'options', 'studies', name)
                 for name in os.listdir(os.path.join(REPO_ROOT, 'options', 'studies')))


def variant_macs(study):
    """{variant: MACs per 256x256} of a study's networks (meta device: no compute)."""
    from basicsr_sgenet.inference.network import NetworkSpec
    from basicsr_sgenet.tools.profiling import count_macs

    macs = {}
    for variant in study.variants:
        network = dict(run_options(study, variant, study.seeds[0], dataset_root='/data')['network_g'])
        macs[variant.name] = count_macs(NetworkSpec(network.pop('type'), network), 256, 256)[0]
    return macs


@pytest.mark.parametrize('path', SHIPPED, ids=os.path.basename)
def test_shipped_studies_read_and_every_variant_builds(path):
    from basicsr_sgenet.integration.options import _check_networks, _check_registered_types

    study = read_study(path)
    assert len(study.seeds) >= (3 if path.endswith('_mini.yml') else 1)
    for variant in study.variants:
        opt = run_options(study, variant, study.seeds[0], dataset_root='/data')
        _check_networks(opt, variant.name)
        _check_registered_types(opt, variant.name)


@pytest.mark.parametrize('name', ['peers_mini.yml', 'peers_gopro.yml'])
def test_peers_cost_the_same_within_10_percent(name):
    macs = variant_macs(read_study(os.path.join(REPO_ROOT, 'options', 'studies', name)))
    assert set(macs) == {'SGENet', 'MIMO-UNetPlus', 'MPRNet', 'NAFNet', 'Restormer'}
    assert max(macs.values()) / min(macs.values()) <= 1.10, macs


@pytest.mark.parametrize('name, variants', [('peers_mini.yml', []), ('ablation_mini.yml', ['no_cem', 'strict_loss'])])
def test_shipped_mini_study_runs_in_quick_form(tmp_path, name, variants):
    study_file = os.path.join(REPO_ROOT, 'options', 'studies', name)
    args = ['--quick', '--out', str(tmp_path / 'out')] + (['--variants', *variants] if variants else [])
    result = run_study(study_file, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (tmp_path / 'out' / 'results.md').read_text()
    for variant in variants or ['SGENet', 'MIMO-UNetPlus', 'MPRNet', 'NAFNet', 'Restormer']:
        assert f'| {variant} | ' in table
