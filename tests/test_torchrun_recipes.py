"""Every training recipe under ``torchrun --nproc_per_node=2`` (gloo on this CPU machine),
as GPU users run it with nccl: the recipe's own model, loss, optimizer, scheduler and
progressive patches at reduced widths, both ranks ending with the same weights; and, on
one recipe in fp16, ``--auto_resume`` after a kill -9 of one rank resumes every rank from
the same iteration with the gradient scaler's state."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from basicsr_sgenet.integration.options import write_option_file
from conftest import REPO_ROOT, python_env, run_python
from tiny_experiment import write_pairs
from tiny_recipes import recipe_files, recipe_name, tiny_recipe

PROBE = os.path.join(REPO_ROOT, 'tests', 'ddp_probe.py')


def torchrun_command(yml, *extra):
    return [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', PROBE,
            '-opt', str(yml), '--launcher', 'pytorch', *extra]


def assert_ranks_hold_identical_weights(folder):
    rank0, rank1 = (torch.load(folder / f'rank{rank}.pth') for rank in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f'{key} differs between ranks'


def logged_iters(log_text):
    return [int(value) for value in re.findall(r'iter:\s*([\d,]+)', log_text.replace(',', ''))]


@pytest.mark.parametrize('recipe', recipe_files(), ids=recipe_name)
def test_recipe_trains_under_torchrun_with_identical_weights_on_both_ranks(tmp_path, recipe):
    name = recipe_name(recipe)
    write_pairs(tmp_path / 'data', count=4, size=32)
    yml = write_option_file(tmp_path / f'{name}.yml', tiny_recipe(recipe, tmp_path / 'data', name, iters=3))
    result = run_python(torchrun_command(yml)[1:], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_ranks_hold_identical_weights(tmp_path)
    log = next((tmp_path / 'experiments' / name).glob(f'train_{name}_*.log')).read_text()
    assert 'World size (gpu number): 2' in log
    assert max(logged_iters(log)) == 3 and 'l_pix' in log
    assert (tmp_path / 'experiments' / name / 'models' / 'net_g_3.pth').exists()


def worker_pids(agent_pid):
    """The processes torchrun's agent started (its children)."""
    with open(f'/proc/{agent_pid}/task/{agent_pid}/children') as f:
        return [int(pid) for pid in f.read().split()]


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='finds torchrun workers through /proc')
def test_kill_9_of_one_rank_then_auto_resume_resumes_every_rank_from_the_same_iteration(tmp_path):
    total_iter = 200
    recipe = os.path.join(REPO_ROOT, 'options', 'train_Restormer_GoPro.yml')
    write_pairs(tmp_path / 'data', count=4, size=32)
    opt = tiny_recipe(recipe, tmp_path / 'data', 'resume', iters=total_iter, checkpoint_every=10)
    opt['train']['mixed_precision'] = 'fp16'
    yml = write_option_file(tmp_path / 'resume.yml', opt)
    states = tmp_path / 'experiments' / 'resume' / 'training_states'

    run = subprocess.Popen(torchrun_command(yml), cwd=tmp_path, env=python_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while not (states / '20.state').exists():
            assert run.poll() is None, 'training ended before a rank could be killed'
            assert time.time() < deadline, 'no checkpoint within 240 s'
            time.sleep(0.02)
        workers = worker_pids(run.pid)
        assert len(workers) == 2
        os.kill(workers[1], signal.SIGKILL)
        assert run.wait(timeout=120) != 0  # torchrun stops the other rank and fails
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    saved = sorted(int(path.stem) for path in states.glob('*.state'))
    assert 20 <= saved[-1] < total_iter
    assert 'grad_scaler' in torch.load(states / f'{saved[0]}.state', weights_only=True)

    resumed = run_python(torchrun_command(yml, '--auto_resume')[1:], cwd=tmp_path, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reports = [json.loads((tmp_path / f'rank{rank}.json').read_text()) for rank in (0, 1)]
    assert reports[0]['resumed_from'] is not None and reports[0]['resumed_from'] >= 20
    assert reports[0] == reports[1]  # the same iteration and the same scaler state on both ranks
    assert reports[0]['grad_scaler'] is not None
    assert_ranks_hold_identical_weights(tmp_path)
    log = sorted((tmp_path / 'experiments').glob('resume*/train_resume_*.log'))[-1].read_text()
    assert 'Resuming training from epoch: ' in log and f'iter: {reports[0]["resumed_from"]}.' in log
    assert 'Resumed the fp16 gradient scaler at scale' in log
    assert max(logged_iters(log)) == total_iter and 'grad_scale: ' in log
