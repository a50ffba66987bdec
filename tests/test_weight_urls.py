"""Weights given as URLs (``--weights``, ``path.pretrain_network_g``): downloaded once
into torch hub's cache, checked against an optional ``#sha256=`` pin, one error line when
they cannot be had. Served by a local HTTP server on 127.0.0.1; TORCH_HOME in tmp_path."""
import functools
import hashlib
import http.server
import os
import threading

import cv2
import numpy as np
import pytest
import torch
from basicsr.models.base_model import BaseModel
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import REPO_ROOT, free_port, run_python

from basicsr_sgenet.tools import benchmark

from basicsr_sgenet import deblur
from basicsr_sgenet.integration.errors import InferenceError, OptionError
from basicsr_sgenet.integration.options import check_options
from basicsr_sgenet.integration.weights import cached_path, fetch_weights, weights_cache_dir

TINY_SGENET = {'channels': [8, 12, 16], 'num_rdm': 1}
TINY_SGENET_JSON = '{"channels": [8, 12, 16], "num_rdm": 1}'


class WeightsServer:
    """A folder served over HTTP on 127.0.0.1, counting the GET requests per path."""

    def __init__(self, folder):
        self.folder, self.requests = folder, {}
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):

            def do_GET(self):
                server.requests[self.path] = server.requests.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', self.port),
                                                     functools.partial(Handler, directory=str(folder)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f'http://127.0.0.1:{self.port}/{name}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    folder = tmp_path / 'served'
    folder.mkdir()
    torch.manual_seed(0)
    network = ARCH_REGISTRY.get('SGENet')(**TINY_SGENET)
    torch.save({'params': network.state_dict()}, folder / 'sgenet.pth')
    server = WeightsServer(folder)
    yield server
    server.close()


def sha256_of(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def cache_files():
    folder = weights_cache_dir()
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def run_deblur(tmp_path, weights, output):
    image = tmp_path / 'blurry.png'
    if not image.exists():
        cv2.imwrite(str(image), (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8))
    return deblur.main(['-i', str(image), '-o', str(tmp_path / output), '--weights', weights, '--arch-args',
                        TINY_SGENET_JSON, '--device', 'cpu', '--quiet'])


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err  # --quiet: no download progress bar either
    return lines[0]


def test_deblur_with_a_pinned_url_downloads_once_and_matches_the_file(tmp_path, served, capsys):
    local = served.folder / 'sgenet.pth'
    url = served.url('sgenet.pth') + '#sha256=' + sha256_of(local)
    assert run_deblur(tmp_path, str(local), 'from_file') == 0
    assert run_deblur(tmp_path, url, 'from_url') == 0
    assert run_deblur(tmp_path, url, 'from_url_again') == 0
    assert served.requests == {'/sgenet.pth': 1}  # the second run read the cache
    assert cache_files() == [os.path.basename(cached_path(served.url('sgenet.pth')))]
    assert sha256_of(cached_path(served.url('sgenet.pth'))) == sha256_of(local)
    expected = (tmp_path / 'from_file' / 'blurry.png').read_bytes()
    assert (tmp_path / 'from_url' / 'blurry.png').read_bytes() == expected
    assert (tmp_path / 'from_url_again' / 'blurry.png').read_bytes() == expected


def test_a_wrong_pin_is_one_line_and_nothing_is_kept(tmp_path, served, capsys):
    url = served.url('sgenet.pth') + '#sha256=' + '0' * 64
    assert run_deblur(tmp_path, url, 'out') == 2
    line = one_error_line(capsys)
    assert 'do not match the pinned sha256 ' + '0' * 64 in line and served.url('sgenet.pth') in line
    assert sha256_of(served.folder / 'sgenet.pth') in line  # what the file has, to check against the source
    assert cache_files() == [] and not (tmp_path / 'out').exists()


def test_a_malformed_pin_is_refused_before_downloading(tmp_path, served, capsys):
    assert run_deblur(tmp_path, served.url('sgenet.pth') + '#md5=abc', 'out') == 2
    assert 'sha256=<' in one_error_line(capsys) and served.requests == {}


def test_an_unreachable_server_and_a_missing_file_are_one_line_naming_the_url(tmp_path, served, capsys):
    closed = f'http://127.0.0.1:{free_port()}/sgenet.pth'
    assert run_deblur(tmp_path, closed, 'out') == 2
    line = one_error_line(capsys)
    assert line.startswith(f'error: Cannot download weights from {closed} (') and 'refused' in line
    missing = served.url('nothing.pth')
    assert run_deblur(tmp_path, missing, 'out') == 2
    assert one_error_line(capsys) == f'error: Cannot download weights from {missing}: HTTP 404 File not found'
    assert cache_files() == [] and not (tmp_path / 'out').exists()


def test_a_truncated_download_never_takes_the_cache_name(tmp_path, served):
    data = (served.folder / 'sgenet.pth').read_bytes()
    (served.folder / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(InferenceError, match='truncated .*; the file was not kept'):
        fetch_weights(served.url('cut.pth'), progress=False)
    assert cache_files() == []


def test_a_changed_pin_downloads_again(tmp_path, served):
    first = fetch_weights(served.url('sgenet.pth'), progress=False)
    torch.save({'params': {'x': torch.ones(2)}}, served.folder / 'sgenet.pth')  # the file at the URL changed
    assert fetch_weights(served.url('sgenet.pth'), progress=False) == first  # unpinned: the cached copy
    pinned = fetch_weights(served.url('sgenet.pth') + '#sha256=' + sha256_of(served.folder / 'sgenet.pth'),
                           progress=False)
    assert pinned == first and sha256_of(pinned) == sha256_of(served.folder / 'sgenet.pth')
    assert served.requests == {'/sgenet.pth': 2}


def test_pretrain_network_g_url_is_fetched_by_the_option_check_and_loaded_by_basicsr(tmp_path, served):
    url = served.url('sgenet.pth')
    opt = {'name': 'x', 'model_type': 'DeblurModel', 'network_g': dict(TINY_SGENET, type='SGENet'),
           'path': {'pretrain_network_g': url}}
    check_options(opt, 'opt.yml', is_train=False, check_data=False)
    assert served.requests == {'/sgenet.pth': 1}
    # BasicSR's load_network (as patched by the plugin) reads the cached copy of the URL
    network = ARCH_REGISTRY.get('SGENet')(**TINY_SGENET)
    model = BaseModel.__new__(BaseModel)
    model.opt = {'dist': False}
    model.load_network(network, url, strict=True, param_key='params')
    expected = torch.load(served.folder / 'sgenet.pth')['params']
    assert all(torch.equal(network.state_dict()[name], expected[name]) for name in expected)
    assert served.requests == {'/sgenet.pth': 1}

    opt['path']['pretrain_network_g'] = served.url('missing.pth')
    with pytest.raises(OptionError, match=r'opt.yml: path.pretrain_network_g: Cannot download weights from '
                       rf'{served.url("missing.pth")}: HTTP 404'):
        check_options(opt, 'opt.yml', is_train=False, check_data=False)


def test_benchmark_stops_on_a_bad_weights_url_before_any_work(tmp_path, served, capsys):
    missing = served.url('missing.pth')
    status = benchmark.main(['--model', 'SGENet:' + TINY_SGENET_JSON, '--weights', missing, '--sizes', '32x32',
                             '--device', 'cpu'])
    assert status == 2
    assert one_error_line(capsys) == f'error: Cannot download weights from {missing}: HTTP 404 File not found'


def test_export_stops_on_a_bad_weights_url_before_any_work(tmp_path, served, capsys):
    from basicsr_sgenet import export
    missing = served.url('missing.pth')
    status = export.main(['--arch-args', TINY_SGENET_JSON, '--weights', missing, '-o', str(tmp_path / 'x.onnx')])
    assert status == 2 and not (tmp_path / 'x.onnx').exists()
    assert one_error_line(capsys) == f'error: Cannot download weights from {missing}: HTTP 404 File not found'


def test_training_through_basicsr_starts_from_a_url(tmp_path, served):
    """sgenet-train with path.pretrain_network_g a URL: fetched by the option check, loaded
    by BasicSR's load_network (the plugin's), from the cache shared with the child."""
    from tiny_experiment import TINY_SGENET as TRAINING_SGENET
    from tiny_experiment import training_options, write_options, write_pairs
    torch.manual_seed(3)
    kwargs = {key: value for key, value in TRAINING_SGENET.items() if key != 'type'}
    start = ARCH_REGISTRY.get('SGENet')(**kwargs).state_dict()
    torch.save({'params': start}, served.folder / 'start.pth')
    write_pairs(tmp_path / 'data', count=2, size=40)
    opt = training_options(tmp_path / 'data', 'from_url', total_iter=1, checkpoint_every=1, validate=False)
    opt['path']['pretrain_network_g'] = served.url('start.pth') + '#sha256=' + sha256_of(served.folder / 'start.pth')
    yml = write_options(tmp_path / 'from_url.yml', opt)
    result = run_python([os.path.join(REPO_ROOT, 'basicsr_sgenet', 'train.py'), '-opt', str(yml)], cwd=tmp_path,
                        TORCH_HOME=os.environ['TORCH_HOME'])
    assert result.returncode == 0, result.stderr[-3000:]
    log = next((tmp_path / 'experiments' / 'from_url').glob('train_from_url_*.log')).read_text()
    assert f'Loading SGENet model from {served.url("start.pth")}' in log
    assert served.requests == {'/start.pth': 1}  # the option check downloaded it, BasicSR read the cache
