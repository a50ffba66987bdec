"""Shared test set-up: the plugin is imported (registration) and its patches installed
once, as the entry points do, and torch uses one thread so parallel test runs on a
2-core machine don't oversubscribe."""
import os
import socket
import subprocess
import sys

import pytest
import torch

import basicsr_sgenet  # noqa: F401
from basicsr_sgenet.integration import patches

patches.install()
torch.set_num_threads(1)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_env(**overrides):
    """Environment for a child Python: the repository importable, one torch thread."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO_ROOT)
    env.update(overrides)
    return env


def run_python(args, cwd=None, timeout=300, **env_overrides):
    """Run ``python <args>`` and return the CompletedProcess (text output captured)."""
    return subprocess.run([sys.executable] + list(args), cwd=cwd, env=python_env(**env_overrides), text=True,
                          capture_output=True, timeout=timeout)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def fresh_basicsr_logger():
    """BasicSR sets its root logger up once per process, with the log file of the first run:
    let every in-process run of a test write its own log file."""
    import logging

    from basicsr.utils import logger as basicsr_logger

    def reset():
        basicsr_logger.initialized_logger.clear()
        for handler in logging.getLogger('basicsr').handlers[:]:
            logging.getLogger('basicsr').removeHandler(handler)
            handler.close()

    reset()
    yield
    reset()


@pytest.fixture
def native_bf16(monkeypatch):
    """Let bf16 run whatever the CPU: CPUs without native bf16 refuse it (far too slow
    there for real work), but the tiny tensors of these tests stay cheap."""
    from basicsr_sgenet.integration import precision
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: True)


@pytest.fixture
def torchrun_env(monkeypatch):
    """A single-process torchrun environment on a free local port."""
    for name, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                            MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(name, value)
