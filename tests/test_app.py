"""The web page (basicsr_sgenet/app): its runs are the deblur CLI's, bit for bit, and bad
input is one message. The page itself is driven in a headless Chromium (Debian's
chromium + chromium-driver, through selenium); those tests skip, saying why, without it."""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import cv2
import numpy as np
import pytest
import torch
from conftest import free_port, python_env
from tiny_archs import TINY_ARCHS, tiny_network

from basicsr_sgenet import deblur
from basicsr_sgenet.app import __main__ as app_main
from basicsr_sgenet.app import session
from basicsr_sgenet.app.page import Page
from basicsr_sgenet.integration.errors import InferenceError

MODELS = ('NAFNet', 'SGENet')
# Gradio 6.31's queue on pandas 3 (its own code, not the page's)
pytestmark = [pytest.mark.filterwarnings('ignore:.*no_silent_downcasting:DeprecationWarning'),
              pytest.mark.filterwarnings('ignore:The copy keyword is deprecated:DeprecationWarning')]


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Two tiny models' weights, an 8-bit photo, a 16-bit RGBA image and a text file."""
    folder = tmp_path_factory.mktemp('app')
    paths = {}
    for arch in MODELS:
        paths[arch] = str(folder / f'{arch}.pth')
        torch.save({'params': tiny_network(arch).state_dict()}, paths[arch])
    rng = np.random.default_rng(0)
    inputs = folder / 'inputs'
    inputs.mkdir()
    photo = cv2.GaussianBlur((rng.random((40, 56, 3)) * 255).astype(np.uint8), (7, 7), 2)
    cv2.imwrite(str(inputs / 'photo.png'), photo)
    rgba16 = (rng.random((32, 48, 4)) * 65535).astype(np.uint16)
    cv2.imwrite(str(inputs / 'rgba16.png'), rgba16)
    paths.update(photo=str(inputs / 'photo.png'), rgba16=str(inputs / 'rgba16.png'), inputs=str(inputs))
    paths['text'] = str(folder / 'notes.txt')
    (folder / 'notes.txt').write_text('not an image')
    return paths


def model_line(arch, weights):
    return f'{arch} {json.dumps(TINY_ARCHS[arch])} {weights}'


def models_text(files):
    return '\n'.join(model_line(arch, files[arch]) for arch in MODELS)


@pytest.fixture(scope='module')
def cli_outputs(files, tmp_path_factory):
    """What the deblur CLI writes for the two inputs with each model (default settings)."""
    outputs = {}
    for arch in MODELS:
        folder = tmp_path_factory.mktemp(f'cli_{arch}')
        status = deblur.main(['-i', files['inputs'], '-o', str(folder), '--weights', files[arch], '--arch', arch,
                              '--arch-args', json.dumps(TINY_ARCHS[arch]), '--quiet'])
        assert status == 0
        outputs[arch] = {name: (folder / name).read_bytes() for name in ('photo.png', 'rgba16.png')}
    return outputs


def test_importing_the_plugin_or_the_app_package_does_not_import_gradio():
    code = ('import sys, basicsr_sgenet, basicsr_sgenet.app, basicsr_sgenet.app.session, basicsr_sgenet.app.page; '
            'print("gradio" in sys.modules)')
    child = subprocess.run([sys.executable, '-c', code], env=python_env(), capture_output=True, text=True, timeout=120)
    assert child.returncode == 0 and child.stdout.strip() == 'False', child.stderr


def test_model_lines_become_the_cli_s_flags():
    models = session.parse_models('# a comment\nNAFNet {"width": 8} -odd name.pth\n\noptions/test.yml\n'
                                  'Restormer https://host/r.pth#sha256=ab\n')
    assert [model.flags for model in models] == [
        ['--arch=NAFNet', '--arch-args={"width": 8}', '--weights=-odd name.pth'],
        ['--opt=options/test.yml'],
        ['--arch=Restormer', '--weights=https://host/r.pth#sha256=ab']]
    args = session.cli_arguments(models[0], session.Settings(tile=64), 'in.png', 'out')
    assert (args.arch, args.weights, args.tile, args.tile_overlap, args.device) == ('NAFNet', '-odd name.pth', 64, 64,
                                                                                     'auto')
    with pytest.raises(InferenceError, match=r'Model line 2 \(NAFNet \{"width": 8 w.pth\): the arch arguments are '
                       'not valid JSON'):
        session.parse_models('\nNAFNet {"width": 8 w.pth')
    with pytest.raises(InferenceError, match='Name at least one model'):
        session.parse_models('  \n# nothing\n')


@pytest.mark.parametrize('tile', [0, 32])
def test_a_run_writes_the_cli_s_files_bit_for_bit(files, cli_outputs, tmp_path, tile):
    if tile:  # the CLI's tiled output for comparison
        expected = {}
        for arch in MODELS:
            out = tmp_path / f'cli_tiled_{arch}'
            assert deblur.main(['-i', files['inputs'], '-o', str(out), '--weights', files[arch], '--arch', arch,
                                '--arch-args', json.dumps(TINY_ARCHS[arch]), '--tile', '32', '--tile-overlap', '16',
                                '--quiet']) == 0
            expected[arch] = {name: (out / name).read_bytes() for name in ('photo.png', 'rgba16.png')}
    else:
        expected = cli_outputs
    progress = []
    images = session.run(session.Restorers(), [files['photo'], files['rgba16']], session.parse_models(
        models_text(files)), session.Settings(tile=tile, tile_overlap=16), str(tmp_path / 'page'),
        lambda fraction, text: progress.append(fraction))
    for entry in images:
        assert entry.error is None and len(entry.results) == 2
        for arch, result in zip(MODELS, entry.results):
            assert result.error is None and result.device == 'cpu' and result.seconds > 0
            assert open(result.output_path, 'rb').read() == expected[arch][entry.name], (arch, entry.name)
    assert progress == sorted(progress) and progress[-1] == 1.0
    if tile:  # 40x56 and 32x48 in 32-pixel tiles with 16 overlap: progress follows the tiles
        assert len(progress) > 10


def test_bad_input_is_a_message_and_the_rest_still_runs(files, cli_outputs, tmp_path):
    closed = f'http://127.0.0.1:{free_port()}/w.pth'
    models = '\n'.join([model_line('NAFNet', files['NAFNet']), model_line('SGENet', files['NAFNet']),
                        model_line('NAFNet', closed)])
    page = Page(str(tmp_path))
    status, html, downloads = page.deblur([files['text'], files['photo']], models, 'auto', 'auto', 0, 64)
    status = unescaped(status)
    assert '**Error** — notes.txt cannot be read as an image (unsupported or corrupt file)' in status
    assert files['text'] not in status  # the uploaded file's temporary folder is left out
    assert 'does not fit SGENet(' in status and f'Cannot download weights from {closed} (' in status
    assert 'Traceback' not in status + html and html.count('class="sgenet-view"') == 1
    assert [open(path, 'rb').read() for path in downloads] == [cli_outputs['NAFNet']['photo.png']]
    # garbage everywhere: still one message, never an exception
    assert page.deblur(None, '', None, None, None, None) == ('Drop one or more images first.', '', [])
    status, html, downloads = page.deblur([files['photo']], 'NAFNet {oops', 'auto', 'auto', 0, 64)
    assert unescaped(status).startswith('**Error** — Model line 1 (NAFNet {oops): the arch arguments are not valid '
                                        'JSON')
    status, _, _ = page.deblur([files['photo']], model_line('NAFNet', files['NAFNet']), 'cuda:7', 'auto', 0, 64)
    assert 'Error' in status and '--device cuda:7' in status


def test_restorers_are_reused_until_the_weights_file_changes(files, tmp_path):
    restorers = session.Restorers()
    weights = tmp_path / 'w.pth'
    shutil.copy(files['NAFNet'], weights)
    model = session.parse_models(model_line('NAFNet', weights))[0]
    args = session.cli_arguments(model, session.Settings(device='cpu'), files['photo'], str(tmp_path))
    first = restorers.get(args)[1]
    assert restorers.get(args)[1] is first
    torch.save({'params': tiny_network('NAFNet', seed=1).state_dict()}, weights)  # retrained
    os.utime(weights, ns=(1, 1))  # a different time, however coarse the file system's clock
    assert restorers.get(args)[1] is not first


def unescaped(markdown):
    """The text of the page's status Markdown (messages are escaped so they show as they are)."""
    return re.sub(r'\\(.)', r'\1', markdown)


def test_serving_beyond_this_machine_needs_the_flag_and_warns(monkeypatch, capsys):
    from basicsr_sgenet.app import page
    served = []
    monkeypatch.setattr(page, 'import_gradio', lambda: None)
    monkeypatch.setattr(page, 'serve', lambda *args, **kwargs: served.append(args))
    assert app_main.main([]) == 0 and served[-1][:2] == ('127.0.0.1', 7860)
    assert 'warning' not in capsys.readouterr().err
    assert app_main.main(['--host', '0.0.0.0', '--port', '8000']) == 0 and served[-1][:2] == ('0.0.0.0', 8000)
    assert capsys.readouterr().err.startswith('warning: serving on 0.0.0.0, not only this machine')


# ----------------------------------------------------------------------------- in the browser

def browser_problem():
    """Why the browser tests cannot run here, or None."""
    missing = [name for name in ('chromium', 'chromedriver') if not shutil.which(name)]
    if missing:
        return (f'{" and ".join(missing)} not installed (Debian: apt-get install chromium chromium-driver; '
                '.ci/run does it)')
    for module in ('selenium', 'gradio'):
        try:
            __import__(module)
        except ImportError:
            return f'{module} not installed (pip install -e ".[test]")'
    return None


@pytest.fixture(scope='module')
def server():
    problem = browser_problem()
    if problem:
        pytest.skip(f'browser tests: {problem}')
    from basicsr_sgenet.app import page
    port = free_port()
    blocks, work_dir = page.serve('127.0.0.1', port, block=False)
    yield f'http://127.0.0.1:{port}'
    blocks.close()
    shutil.rmtree(work_dir, ignore_errors=True)


def open_browser(width=1400, height=1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = shutil.which('chromium')
    for argument in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                     f'--window-size={width},{height}'):
        options.add_argument(argument)
    # Debian's chromedriver, named explicitly: selenium would otherwise try to download one
    return webdriver.Chrome(service=Service(shutil.which('chromedriver')), options=options)


@pytest.fixture(scope='module')
def browser(server):
    driver = open_browser()
    yield driver
    driver.quit()


def run_on_page(driver, url, image_paths, models, timeout=120):
    """Load the page, upload ``image_paths``, enter ``models``, press Deblur; returns the status text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#sgenet-images input[type=file]'))
    driver.find_element(By.CSS_SELECTOR, '#sgenet-images input[type=file]').send_keys('\n'.join(image_paths))
    names = [os.path.basename(path) for path in image_paths]
    # uploaded: the file list shows each name (its stem and extension in separate elements)
    wait.until(lambda d: all(name in d.find_element(By.ID, 'sgenet-images').text.replace('\n', '') for name in names))
    box = driver.find_element(By.CSS_SELECTOR, '#sgenet-models textarea')
    box.clear()
    box.send_keys(models)
    driver.find_element(By.ID, 'sgenet-run').click()
    wait.until(lambda d: 'result(s).' in d.find_element(By.ID, 'sgenet-status').text)
    return driver.find_element(By.ID, 'sgenet-status').text


def downloaded(driver):
    """{(image name, model line): bytes} of every result link on the page."""
    from selenium.webdriver.common.by import By
    results = {}
    for section in driver.find_elements(By.CSS_SELECTOR, '#sgenet-results .sgenet-image'):
        name = section.find_element(By.TAG_NAME, 'h3').text
        for panel in section.find_elements(By.CSS_SELECTOR, '.sgenet-panel'):
            for link in panel.find_elements(By.CSS_SELECTOR, 'a.sgenet-download'):
                with urllib.request.urlopen(link.get_attribute('href'), timeout=30) as response:
                    results[(name, panel.get_attribute('data-model'))] = response.read()
    return results


def test_page_shows_two_models_side_by_side_equal_to_the_cli(server, browser, files, cli_outputs):
    status = run_on_page(browser, server, [files['photo'], files['rgba16']], models_text(files))
    assert status.startswith('4 result(s).') and 'Error' not in status
    got = downloaded(browser)
    expected = {(name, model_line(arch, files[arch])): cli_outputs[arch][name] for arch in MODELS
                for name in ('photo.png', 'rgba16.png')}
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], key  # the CLI's file, bit for bit
    # every before/after image was served and decoded by the browser, at the input's size
    sizes = browser.execute_script("return [...document.querySelectorAll('.sgenet-view img')].map("
                                   "i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert sorted(map(tuple, sizes)) == sorted([(True, 56, 40)] * 4 + [(True, 48, 32)] * 4)
    # the split follows the mouse in every view of the image at once
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    views = browser.find_elements(By.CSS_SELECTOR, '.sgenet-view[data-group="image0"]')
    ActionChains(browser).move_to_element_with_offset(views[0], -views[0].size['width'] // 4, 0).perform()
    clips = browser.execute_script("return [...document.querySelectorAll('.sgenet-view[data-group=\"image0\"] "
                                   ".sgenet-clip')].map(c => c.style.clipPath)")
    assert len(clips) == 2 and clips[0] == clips[1] and clips[0].startswith('inset(0px 0px 0px 2')


def test_page_says_what_is_wrong_and_keeps_serving(server, browser, files, cli_outputs):
    closed = f'http://127.0.0.1:{free_port()}/w.pth'
    status = run_on_page(browser, server, [files['text']], model_line('NAFNet', closed))
    assert 'notes.txt cannot be read as an image (unsupported or corrupt file)' in status
    status = run_on_page(browser, server, [files['photo']],
                         '\n'.join([model_line('SGENet', files['NAFNet']), model_line('NAFNet', closed)]))
    assert 'does not fit SGENet(' in status and f'Cannot download weights from {closed}' in status
    assert 'Traceback' not in browser.page_source
    # the server is still there and still right
    status = run_on_page(browser, server, [files['photo']], model_line('NAFNet', files['NAFNet']))
    assert status.startswith('1 result(s).')
    assert list(downloaded(browser).values()) == [cli_outputs['NAFNet']['photo.png']]
