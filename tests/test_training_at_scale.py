"""Training as users run it for days: torchrun with several processes (gloo on this CPU
machine), and auto-resume after a kill -9, including one that hit a checkpoint write."""
import os
import re
import signal
import subprocess
import sys
import time

import torch

from conftest import REPO_ROOT, python_env, run_python
from tiny_experiment import training_options, write_options, write_pairs


def test_two_ranks_with_gloo_end_with_identical_weights(tmp_path):
    write_pairs(tmp_path / 'data', count=4, size=40)
    opt = training_options(tmp_path / 'data', 'ddp', total_iter=6, checkpoint_every=3, validate=False)
    yml = write_options(tmp_path / 'ddp.yml', opt)
    result = run_python(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                         os.path.join(REPO_ROOT, 'tests', 'ddp_probe.py'), '-opt', str(yml), '--launcher', 'pytorch'],
                        cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f'rank{rank}.pth') for rank in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f'{key} differs between ranks'
    log = next((tmp_path / 'experiments' / 'ddp').glob('train_ddp_*.log')).read_text()
    assert 'World size (gpu number): 2' in log
    assert (tmp_path / 'experiments' / 'ddp' / 'models' / 'net_g_6.pth').exists()


def _logged_iters(log_text):
    return [int(value) for value in re.findall(r'iter:\s*([\d,]+)', log_text.replace(',', ''))]


def test_kill_9_mid_training_then_auto_resume_reaches_the_same_final_iteration(tmp_path):
    total_iter = 60
    write_pairs(tmp_path / 'data', count=4, size=40)
    yml = write_options(tmp_path / 'resume.yml',
                        training_options(tmp_path / 'data', 'resume', total_iter=total_iter, checkpoint_every=5,
                                         validate=False))
    command = [sys.executable, os.path.join(REPO_ROOT, 'basicsr_sgenet', 'train.py'), '-opt', str(yml)]
    states = tmp_path / 'experiments' / 'resume' / 'training_states'

    run = subprocess.Popen(command, cwd=tmp_path, env=python_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not (states / '15.state').exists():
        assert run.poll() is None, 'training ended before it could be killed'
        assert time.time() < deadline, 'no checkpoint within 240 s'
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    saved = sorted(int(p.stem) for p in states.glob('*.state'))
    assert saved[-1] >= 15 and saved[-1] < total_iter
    # As if the kill had hit the newest state's write: auto-resume must fall back.
    newest = states / f'{saved[-1]}.state'
    newest.write_bytes(newest.read_bytes()[:64])
    fallback = saved[-2]

    resumed = run_python([command[1], '-opt', str(yml), '--auto_resume'], cwd=tmp_path, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    logs = sorted((tmp_path / 'experiments').glob('resume*/train_resume_*.log'))
    resume_log = logs[-1].read_text()
    assert re.search(rf'Resuming training from epoch: \d+, iter: {fallback}\.', resume_log)
    assert f'skipping Resume state {newest} cannot be read' in resumed.stderr
    assert max(_logged_iters(resume_log)) == total_iter
    assert (tmp_path / 'experiments' / 'resume' / 'models' / 'net_g_latest.pth').exists()
    # The learning-rate schedule continued where it stopped instead of restarting.
    first_lr = float(re.search(rf'iter:\s*{fallback + 1},\s*lr:\(([\d.e+-]+),?\)', resume_log).group(1))
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    from basicsr.models.lr_scheduler import CosineAnnealingRestartLR
    schedule = CosineAnnealingRestartLR(optimizer, periods=[total_iter], restart_weights=[1], eta_min=1e-7)
    for _ in range(fallback):
        schedule.step()
    # The log prints 4 significant digits; a restarted schedule would be ~7% higher here.
    assert abs(first_lr - schedule.get_last_lr()[0]) < 5e-4 * first_lr
