"""The deblur CLI's automatic choice of backend and precision per machine, and the bf16
refusal on CPUs without native bf16 (simulated: the test machine's CPU may have it)."""
import argparse

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_sgenet.integration import precision
from basicsr_sgenet.deblur import main
from basicsr_sgenet.integration.errors import InferenceError
from basicsr_sgenet.inference.backends import plan_from_args

TINY_SGENET_JSON = '{"channels": [8, 12, 16], "num_rdm": 1}'
CPU = torch.device('cpu')


@pytest.fixture
def no_native_bf16(monkeypatch):
    """An AVX2-only CPU as far as the plugin can tell."""
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: False)


def cli_args(**given):
    args = dict(backend='auto', model=None, precision='auto', channels_last=None, compile=False, weights=None,
                opt=None, arch=None, arch_args=None, param_key=None, device='cpu')
    args.update(given)
    return argparse.Namespace(**args)


def test_auto_on_a_cpu_with_native_bf16_is_bf16_channels_last(native_bf16):
    plan = plan_from_args(cli_args(), CPU)
    assert (plan.backend, plan.precision, plan.channels_last) == ('pytorch', 'bf16', True)
    assert 'native bf16' in plan.reason


def test_auto_on_a_cpu_without_native_bf16_is_fp32_channels_last(no_native_bf16):
    plan = plan_from_args(cli_args(), CPU)
    assert (plan.backend, plan.precision, plan.channels_last) == ('pytorch', 'fp32', True)
    assert 'no native bf16' in plan.reason


def test_explicit_settings_win_and_plain_eager_fp32_stays_available(native_bf16):
    plan = plan_from_args(cli_args(precision='fp32', channels_last=False), CPU)
    assert (plan.precision, plan.channels_last, plan.reason) == ('fp32', False, '')
    assert plan.describe() == 'PyTorch, fp32 on cpu'


def test_auto_on_cuda_is_plain_fp32():
    plan = plan_from_args(cli_args(), torch.device('cuda'))
    assert (plan.precision, plan.channels_last) == ('fp32', False)


def test_bf16_is_refused_on_a_cpu_without_native_bf16(no_native_bf16):
    with pytest.raises(InferenceError, match='--precision bf16 on cpu: this CPU has no native bf16'):
        plan_from_args(cli_args(precision='bf16'), CPU)


@pytest.fixture
def sgenet_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'sgenet.pth'
    torch.save(ARCH_REGISTRY.get('SGENet')(channels=[8, 12, 16], num_rdm=1).state_dict(), path)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / 'a.png'), cv2.GaussianBlur((rng.random((24, 36, 3)) * 255).astype(np.uint8), (5, 5), 1))
    return str(path)


def deblur(tmp_path, weights, output, *extra):
    return main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / output), '--weights', weights, '--arch-args',
                 TINY_SGENET_JSON, '--device', 'cpu', *extra])


def test_cli_refuses_bf16_in_one_line_without_native_bf16(tmp_path, sgenet_weights, capsys, no_native_bf16):
    assert deblur(tmp_path, sgenet_weights, 'out', '--precision', 'bf16', '--quiet') == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --precision bf16') and 'no native bf16' in err and len(err.splitlines()) == 1
    assert not (tmp_path / 'out').exists()  # refused before anything was written


def test_cli_default_without_native_bf16_is_channels_last_fp32(tmp_path, sgenet_weights, capsys, no_native_bf16):
    assert deblur(tmp_path, sgenet_weights, 'auto') == 0
    assert 'Running PyTorch, fp32, channels-last on cpu (this CPU has no native bf16' in capsys.readouterr().err
    assert deblur(tmp_path, sgenet_weights, 'explicit', '--precision', 'fp32', '--channels-last', '--quiet') == 0
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / 'auto' / 'a.png')),
                                  cv2.imread(str(tmp_path / 'explicit' / 'a.png')))


def test_cli_default_with_native_bf16_says_what_it_runs(tmp_path, sgenet_weights, capsys, native_bf16):
    assert deblur(tmp_path, sgenet_weights, 'auto') == 0
    assert 'Running PyTorch, bf16, channels-last on cpu (this CPU has native bf16' in capsys.readouterr().err


@pytest.fixture
def onnx_file(tmp_path):
    pytest.importorskip('openvino')
    path = tmp_path / 'model.onnx'
    path.write_bytes(b'')  # the plan only checks that it exists
    return str(path)


def test_auto_with_a_model_is_openvino_bf16_with_native_bf16(onnx_file, native_bf16):
    plan = plan_from_args(cli_args(model=onnx_file), CPU)
    assert (plan.backend, plan.precision, plan.device.type) == ('openvino', 'bf16', 'cpu')


def test_auto_with_a_model_is_openvino_fp32_without_native_bf16(onnx_file, no_native_bf16):
    plan = plan_from_args(cli_args(model=onnx_file), CPU)
    assert (plan.backend, plan.precision) == ('openvino', 'fp32')
    with pytest.raises(InferenceError, match='no native bf16'):
        plan_from_args(cli_args(model=onnx_file, precision='bf16'), CPU)


def test_cpu_only_backends_take_the_cpu_when_the_device_is_auto(onnx_file):
    plan = plan_from_args(cli_args(model=onnx_file, backend='openvino', device='auto'), torch.device('cuda'))
    assert plan.device.type == 'cpu'
    with pytest.raises(InferenceError, match='--backend openvino runs on the CPU'):
        plan_from_args(cli_args(model=onnx_file, backend='openvino', device='cuda'), torch.device('cuda'))
