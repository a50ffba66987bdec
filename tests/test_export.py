"""ONNX export (basicsr_sgenet/export.py) and the deblur CLI's ONNX Runtime backend.

Every arch is exported at reduced width and run by ONNX Runtime at sizes it was not
traced with (odd ones included, batch 2) through one file; the CLI's ONNX backend must
write what the PyTorch backend writes. Tiny networks and images: seconds in all.
"""
import itertools
import json
import os
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet import export
from basicsr_sgenet.archs.arch_util import pad_to_multiple
from basicsr_sgenet.deblur import main as deblur_main
from tiny_archs import TINY_ARCHS, tiny_network

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

# Reduced widths of every registered deblurring arch (each still pads to its multiple).
TINY_SGENET_JSON = json.dumps(TINY_ARCHS['SGENet'])
# Archs using an op PyTorch's ONNX exporter lacks, and the op the error must name.
ONNX_UNSUPPORTED = {'FFTformer': 'aten::fft_rfft2'}
EXPORTABLE = sorted(set(TINY_ARCHS) - set(ONNX_UNSUPPORTED))


class OddWidthBranchNet(nn.Module):
    """Branches in Python on the input width: a trace at an even width bakes in the
    even-width path, so the parity check at an odd width must catch it."""
    size_multiple = 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        out = self.conv(x)
        if x.shape[-1] % 2:
            out = out + 1
        return out


if 'OddWidthBranchNet' not in ARCH_REGISTRY:
    ARCH_REGISTRY.register(OddWidthBranchNet)


def reference_pad(image, multiple):
    """The padding the archs had before it was made traceable: F.pad, reflect if it
    fits along both axes, else replicate, unchanged image if nothing to pad."""
    height, width = image.shape[-2:]
    pad_height, pad_width = -height % multiple, -width % multiple
    if pad_height == 0 and pad_width == 0:
        return image
    mode = 'reflect' if pad_height < height and pad_width < width else 'replicate'
    return F.pad(image, (0, pad_width, 0, pad_height), mode=mode)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """{arch: (network, weights path, onnx path)}, every arch exported once by the CLI."""
    folder = tmp_path_factory.mktemp('export')
    files = {}
    for arch in EXPORTABLE:
        network = tiny_network(arch)
        weights, model = folder / f'{arch}.pth', folder / f'{arch}.onnx'
        torch.save({'params': network.state_dict()}, weights)
        status = export.main(['--arch', arch, '--arch-args', json.dumps(TINY_ARCHS[arch]), '--weights', str(weights),
                              '-o', str(model)])
        assert status == 0
        files[arch] = (network, str(weights), str(model))
    return files


# --- padding inside the graph ------------------------------------------------------------

def test_padding_is_bit_identical_to_fpad_reflect_and_replicate():
    for height, width, multiple in itertools.product(range(1, 12), range(1, 12), (2, 4, 8)):
        image = torch.randn(2, 3, height, width)
        expected, actual = reference_pad(image, multiple), pad_to_multiple(image, multiple)
        assert actual.shape == expected.shape and torch.equal(actual, expected), (height, width, multiple)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_padding_traced_at_one_size_pads_every_size():
    traced = torch.jit.trace(lambda image: pad_to_multiple(image, 8), torch.rand(1, 3, 16, 16))  # nothing to pad
    for size in [(16, 16), (13, 21), (3, 17), (1, 1)]:  # reflect, reflect, replicate (3 < pad 5), replicate
        image = torch.rand(1, 3, *size)
        assert torch.equal(traced(image), reference_pad(image, 8)), size


# --- export ---------------------------------------------------------------------------------

@pytest.mark.parametrize('arch', EXPORTABLE)
def test_every_arch_runs_any_size_and_batch_through_one_file(exported, arch):
    network, _, model = exported[arch]
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model, providers=['CPUExecutionProvider'])
    dims = session.get_inputs()[0].shape
    assert isinstance(dims[0], str) and isinstance(dims[2], str) and isinstance(dims[3], str)  # dynamic
    for batch, height, width in [(1, 64, 64), (2, 37, 45), (1, 5, 3)]:  # the traced size, odd sizes, tiny
        image = torch.rand(batch, 3, height, width)
        with torch.no_grad():
            expected = network(image).numpy()
        actual = session.run(None, {'image': image.numpy()})[0]
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() < 1e-4, (batch, height, width)


def test_export_records_what_the_deblur_cli_needs(exported):
    metadata = {prop.key: prop.value for prop in onnx.load(exported['MPRNet'][2]).metadata_props}
    assert metadata['basicsr_sgenet.arch'] == 'MPRNet'
    assert metadata['basicsr_sgenet.size_multiple'] == '8'
    assert json.loads(metadata['basicsr_sgenet.arch_args']) == TINY_ARCHS['MPRNet']


def test_parity_check_prints_the_difference_and_fails_loudly(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / 'branch.pth'
    torch.save(OddWidthBranchNet().state_dict(), weights)
    args = ['--arch', 'OddWidthBranchNet', '--weights', str(weights), '-o', str(tmp_path / 'branch.onnx')]
    assert export.main(args + ['--check-size', '40x40']) == 0  # even width: the traced branch is right
    assert 'max |ONNX Runtime - PyTorch|' in capsys.readouterr().out
    os.remove(tmp_path / 'branch.onnx')
    assert export.main(args) == 2  # default check size is odd: the baked-in branch is caught
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ONNX Runtime differs from PyTorch by 1') and len(err.splitlines()) == 1
    assert os.listdir(tmp_path) == ['branch.pth']  # neither the file nor a temporary one is left


@pytest.mark.parametrize('arch', sorted(ONNX_UNSUPPORTED))
def test_an_arch_with_an_unsupported_op_fails_in_one_line_naming_it(tmp_path, capfd, arch):
    weights = tmp_path / 'weights.pth'
    torch.save(tiny_network(arch).state_dict(), weights)
    status = export.main(['--arch', arch, '--arch-args', json.dumps(TINY_ARCHS[arch]), '--weights', str(weights),
                          '-o', str(tmp_path / 'model.onnx')])
    out, err = capfd.readouterr()  # file-descriptor level: the exporter's native graph dump counts too
    assert status == 2 and out == ''
    assert err == f"error: {arch} uses {ONNX_UNSUPPORTED[arch]}, which PyTorch's ONNX exporter cannot export " \
        '(opset 17)\n'
    assert os.listdir(tmp_path) == ['weights.pth']  # neither the file nor a temporary one is left


@pytest.mark.parametrize('arch', ['NAFNet', 'MLWNet'])
def test_tlc_is_refused(tmp_path, capsys, arch):
    arguments = dict(TINY_ARCHS[arch], tlc_train_size=32)
    network = ARCH_REGISTRY.get(arch)(**arguments)
    torch.save(network.state_dict(), tmp_path / 'tlc.pth')
    status = export.main(['--arch', arch, '--arch-args', json.dumps(arguments), '--weights',
                          str(tmp_path / 'tlc.pth'), '-o', str(tmp_path / 'tlc.onnx')])
    err = capsys.readouterr().err
    assert status == 2 and 'tlc_train_size' in err and not (tmp_path / 'tlc.onnx').exists()


@pytest.mark.parametrize('case', ['output is a folder', 'no weights', 'bad size'])
def test_bad_export_arguments_give_one_error_line(tmp_path, exported, capsys, case):
    weights = exported['SGENet'][1]
    args = {'output is a folder': ['-o', str(tmp_path), '--weights', weights],
            'no weights': ['-o', str(tmp_path / 'x.onnx')],
            'bad size': ['-o', str(tmp_path / 'x.onnx'), '--weights', weights, '--check-size', '12']}[case]
    assert export.main(args + ['--arch-args', TINY_SGENET_JSON]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and len(err.splitlines()) == 1
    assert {'output is a folder': 'is a folder', 'no weights': 'No weights',
            'bad size': '--check-size'}[case] in err


# --- the deblur CLI's ONNX Runtime backend ------------------------------------------------

def smooth_image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (7, 7), 2)


def write_inputs(folder):
    folder.mkdir()
    rgb8 = (smooth_image(40, 56) * 255).astype(np.uint8)
    cv2.imwrite(str(folder / 'eight.png'), rgb8)
    cv2.imwrite(str(folder / 'sixteen.tif'), (smooth_image(37, 45, 1) * 65535).astype(np.uint16))
    cv2.imwrite(str(folder / 'gray.png'), rgb8[..., 1])
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([rgb8, np.full(rgb8.shape[:2], 77, np.uint8)]))
    return folder


def read(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_cli_onnxruntime_backend_writes_what_pytorch_writes(tmp_path, exported, capsys):
    _, weights, model = exported['SGENet']
    inputs = write_inputs(tmp_path / 'in')
    tiles = ['--tile', '32', '--tile-overlap', '16', '--device', 'cpu']
    assert deblur_main(['-i', str(inputs), '-o', str(tmp_path / 'ort'), '--backend', 'onnxruntime', '--model', model,
                        *tiles]) == 0
    err = capsys.readouterr().err
    assert 'Running ONNX Runtime' in err and 'tile/s' in err and 'img/s' in err  # the progress bars
    assert deblur_main(['-i', str(inputs), '-o', str(tmp_path / 'torch'), '--weights', weights, '--arch-args',
                        TINY_SGENET_JSON, '--precision', 'fp32', '--no-channels-last', '--quiet', *tiles]) == 0
    names = sorted(os.listdir(tmp_path / 'torch'))
    assert sorted(os.listdir(tmp_path / 'ort')) == names == ['eight.png', 'gray.png', 'rgba.png', 'sixteen.tif']
    for name in names:
        from_ort, from_torch = read(tmp_path / 'ort' / name), read(tmp_path / 'torch' / name)
        assert from_ort.dtype == from_torch.dtype and from_ort.shape == from_torch.shape
        assert np.abs(from_ort.astype(int) - from_torch.astype(int)).max() <= 1, name  # a rounding flip at most
    np.testing.assert_array_equal(read(tmp_path / 'ort' / 'rgba.png')[..., 3], 77)


def test_cli_openvino_backend_writes_what_pytorch_writes(tmp_path, exported, capsys):
    pytest.importorskip('openvino')
    _, weights, model = exported['Restormer']
    inputs = write_inputs(tmp_path / 'in')
    tiles = ['--tile', '32', '--tile-overlap', '16', '--device', 'cpu', '--precision', 'fp32']
    assert deblur_main(['-i', str(inputs), '-o', str(tmp_path / 'ov'), '--backend', 'openvino', '--model', model,
                        *tiles]) == 0
    assert 'Running OpenVINO, fp32' in capsys.readouterr().err
    assert deblur_main(['-i', str(inputs), '-o', str(tmp_path / 'torch'), '--arch', 'Restormer', '--arch-args',
                        json.dumps(TINY_ARCHS['Restormer']), '--weights', weights, '--no-channels-last', '--quiet',
                        *tiles]) == 0
    for name in sorted(os.listdir(tmp_path / 'torch')):
        from_ov, from_torch = read(tmp_path / 'ov' / name), read(tmp_path / 'torch' / name)
        assert from_ov.dtype == from_torch.dtype and from_ov.shape == from_torch.shape
        assert np.abs(from_ov.astype(int) - from_torch.astype(int)).max() <= 1, name


@pytest.mark.parametrize('openvino_installed', [True, False])
def test_cli_model_alone_selects_openvino_else_onnxruntime(tmp_path, exported, capsys, monkeypatch,
                                                            openvino_installed):
    if openvino_installed:
        pytest.importorskip('openvino')
    else:
        monkeypatch.setitem(sys.modules, 'openvino', None)  # import fails as if not installed
    cv2.imwrite(str(tmp_path / 'a.png'), (smooth_image(24, 20) * 255).astype(np.uint8))
    assert deblur_main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--model',
                        exported['NAFNet'][2]]) == 0
    expected = 'Running OpenVINO, ' if openvino_installed else 'Running ONNX Runtime, fp32'
    assert expected in capsys.readouterr().err
    assert read(tmp_path / 'out' / 'a.png').shape == (24, 20, 3)


@pytest.mark.parametrize('case', ['tile off the grid', 'pytorch options', 'bf16', 'openvino on cuda', 'no model',
                                  'missing model',
                                  'not onnx', 'model with pytorch', 'missing input'])
def test_cli_onnxruntime_bad_input_gives_one_error_line(tmp_path, exported, capsys, case):
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'fake.onnx').write_text('not a model')
    model = exported['MPRNet'][2]  # size multiple 8
    common = ['-i', str(image), '-o', str(tmp_path / 'o'), '--quiet']
    args = {'tile off the grid': ['--model', model, '--tile', '36', '--tile-overlap', '8'],
            'pytorch options': ['--model', model, '--weights', exported['MPRNet'][1], '--channels-last'],
            'bf16': ['--backend', 'onnxruntime', '--model', model, '--precision', 'bf16'],
            'openvino on cuda': ['--backend', 'openvino', '--model', model, '--device', 'cuda'],
            'no model': ['--backend', 'onnxruntime'],
            'missing model': ['--model', str(tmp_path / 'nope.onnx')],
            'not onnx': ['--model', str(tmp_path / 'fake.onnx')],
            'model with pytorch': ['--backend', 'pytorch', '--model', model],
            'missing input': ['--model', model, '-i', str(tmp_path / 'nothing')]}[case]
    assert deblur_main(common + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error:') and len(err.splitlines()) == 1, err
    assert {'tile off the grid': 'not a multiple of 8', 'pytorch options': '--weights, --channels-last only apply',
            'bf16': 'in fp32', 'openvino on cuda': '--device cuda', 'no model': 'needs --model',
            'missing model': 'nope.onnx does not exist',
            'not onnx': 'fake.onnx', 'model with pytorch': 'takes --weights',
            'missing input': 'does not exist'}[case] in err


def test_missing_extras_are_one_line_naming_them(tmp_path, exported, capsys, monkeypatch):
    for module in ('onnxruntime', 'openvino'):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    deblur = ['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--model', exported['SGENet'][2]]
    assert deblur_main(deblur) == 2  # auto: onnxruntime when openvino is missing
    assert export.main(['-o', str(tmp_path / 'x.onnx'), '--weights', exported['SGENet'][1], '--arch-args',
                        TINY_SGENET_JSON]) == 2
    assert deblur_main(deblur + ['--backend', 'openvino']) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith('error:') for line in lines)
    assert 'pip install -e ".[onnx]"' in lines[0] and 'pip install -e ".[onnx]"' in lines[1]
    assert 'pip install -e ".[openvino]"' in lines[2]
    assert not os.path.exists(tmp_path / 'o') and not os.path.exists(tmp_path / 'x.onnx')
