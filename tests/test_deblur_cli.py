"""The deblur CLI (basicsr_sgenet/deblur.py) and what it is built from: tiling, image
IO, weights loading. Runs in-process on tiny networks and images (2-core machine)."""
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.deblur import main
from basicsr_sgenet.integration.errors import InferenceError
from basicsr_sgenet.inference.image_io import RESULTS_RECORD
from basicsr_sgenet.inference.tiling import check_tile_settings, tile_spans, tiled_forward
from basicsr_sgenet.integration.weights import load_weights

TINY_SGENET = {'channels': [8, 12, 16], 'num_rdm': 1}
TINY_SGENET_JSON = '{"channels": [8, 12, 16], "num_rdm": 1}'
PROBE_MARGIN = 16  # overlap 64 // 4: the blend ignores this many pixels at shared tile edges


class TilingProbeNet(nn.Module):
    """A small, strictly local network with a downsampling (so tiles must stay on its
    2-pixel grid) and a receptive-field radius below PROBE_MARGIN (checked below)."""
    size_multiple = 2

    def __init__(self, width=6):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Conv2d(width, width, 3, padding=1)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x):
        features = torch.relu(self.head(x))
        features = torch.relu(self.body(F.avg_pool2d(features, 2)))
        features = F.interpolate(features, scale_factor=2, mode='bilinear', align_corners=False)
        return x + self.tail(features)


if 'TilingProbeNet' not in ARCH_REGISTRY:
    ARCH_REGISTRY.register(TilingProbeNet)


def smooth_image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (7, 7), 2)


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    sgenet = ARCH_REGISTRY.get('SGENet')(**TINY_SGENET)
    probe = TilingProbeNet()
    paths = {'sgenet': str(folder / 'sgenet.pth'), 'probe': str(folder / 'probe.pth')}
    torch.save({'params': sgenet.state_dict(), 'params_ema': sgenet.state_dict()}, paths['sgenet'])
    torch.save({'params': probe.state_dict()}, paths['probe'])
    return paths


def run_cli(*args):
    return main([str(arg) for arg in args] + ['--quiet', '--device', 'cpu'])


def sgenet_cli(input_path, output_dir, weights, *extra):
    return run_cli('-i', input_path, '-o', output_dir, '--weights', weights['sgenet'], '--arch-args',
                   TINY_SGENET_JSON, *extra)


# --- tiling ----------------------------------------------------------------------------

def test_tile_spans_cover_on_the_grid():
    spans = tile_spans(203, 64, 16, multiple=4)
    assert spans[0][0] == 0 and spans[-1][1] == 203
    assert all(start % 4 == 0 for start, _ in spans)
    assert all(prev_end - start >= 16 for (_, prev_end), (start, _) in zip(spans, spans[1:]))
    assert all(end - start >= 64 for start, end in spans) and spans[-1][1] - spans[-1][0] < 64 + 4
    assert tile_spans(50, 64, 16, 4) == [(0, 50)]


def test_probe_receptive_field_is_within_the_margin():
    torch.manual_seed(0)
    net = TilingProbeNet().eval()
    x = torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[..., 32, 32] += 1
    with torch.no_grad():
        changed = (net(y) - net(x)).abs().amax(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    radius = max((rows - 32).abs().max().item(), (cols - 32).abs().max().item())
    assert radius < PROBE_MARGIN


def test_tiled_equals_untiled_for_a_local_network():
    # Every pixel the blend keeps saw exactly its untiled context, so the only
    # difference left is float32 rounding in the weight normalisation (~1e-7).
    torch.manual_seed(0)
    net = TilingProbeNet().eval()
    x = torch.from_numpy(smooth_image(150, 170).transpose(2, 0, 1))[None]
    with torch.no_grad():
        untiled = net(x)
        tiled = tiled_forward(net, x, tile=96, overlap=4 * PROBE_MARGIN, multiple=2)
    assert (tiled - untiled).abs().max().item() < 1e-5


def test_tiled_sgenet_is_within_rounding_of_untiled():
    # SGENet's receptive field spans the whole image and CSAM pools globally, so tiles
    # cannot match exactly. Measured on this tiny random-weight SGENet (192x256 image,
    # tile 128, overlap 64): max abs diff ~5e-6. The bound asserted, 1e-3, is a quarter
    # of an 8-bit step (0.5 / 255 = 2e-3): outputs agree after 8-bit rounding except at
    # rounding boundaries.
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('SGENet')(**TINY_SGENET).eval()
    x = torch.from_numpy(smooth_image(160, 224).transpose(2, 0, 1))[None]
    with torch.no_grad():
        untiled = net(x)
        tiled = tiled_forward(net, x, tile=128, overlap=64, multiple=net.size_multiple)
    assert (tiled - untiled).abs().max().item() < 1e-3


@pytest.mark.parametrize('tile, overlap, message', [(32, 32, 'larger than'), (16, 32, 'larger than'),
                                                    (66, 16, 'multiple of 4'), (64, 18, 'multiple of 4')])
def test_bad_tile_settings(tile, overlap, message):
    with pytest.raises(InferenceError, match=message):
        check_tile_settings(tile, overlap, multiple=4)


def test_cli_tiled_matches_untiled(tmp_path, weights):
    image = (smooth_image(150, 170) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / 'in.png'), image)
    common = ['-i', tmp_path / 'in.png', '--weights', weights['probe'], '--arch', 'TilingProbeNet']
    assert run_cli(*common, '-o', tmp_path / 'whole') == 0
    assert run_cli(*common, '-o', tmp_path / 'tiled', '--tile', 96, '--tile-overlap', 64) == 0
    whole = cv2.imread(str(tmp_path / 'whole' / 'in.png'), cv2.IMREAD_UNCHANGED).astype(int)
    tiled = cv2.imread(str(tmp_path / 'tiled' / 'in.png'), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(whole - tiled).max() <= 1  # 16-bit: at most a rounding-boundary flip


# --- files: bit depth, grayscale, alpha, names --------------------------------------------

def test_bit_depth_gray_alpha_and_names(tmp_path, weights):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    rgb8 = (smooth_image(40, 48) * 255).astype(np.uint8)
    cv2.imwrite(str(inputs / 'eight.png'), rgb8)
    cv2.imwrite(str(inputs / 'sixteen.png'), (smooth_image(40, 48, 1) * 65535).astype(np.uint16))
    cv2.imwrite(str(inputs / 'sixteen.tif'), (smooth_image(36, 44, 2) * 65535).astype(np.uint16))
    cv2.imwrite(str(inputs / 'photo.jpg'), rgb8)
    cv2.imwrite(str(inputs / 'gray.png'), rgb8[..., 1])
    alpha = np.tile(np.arange(48, dtype=np.uint8) * 5, (40, 1))
    cv2.imwrite(str(inputs / 'rgba.png'), np.dstack([rgb8, alpha]))

    assert sgenet_cli(inputs, tmp_path / 'out', weights) == 0

    def read(name):
        return cv2.imread(str(tmp_path / 'out' / name), cv2.IMREAD_UNCHANGED)

    assert visible(tmp_path / 'out') == ['eight.png', 'gray.png', 'photo.png', 'rgba.png',
                                                    'sixteen.png', 'sixteen.tif']
    assert read('eight.png').dtype == np.uint8 and read('eight.png').shape == (40, 48, 3)
    assert read('sixteen.png').dtype == np.uint16 and read('sixteen.png').shape == (40, 48, 3)
    assert read('sixteen.tif').dtype == np.uint16 and read('sixteen.tif').shape == (36, 44, 3)
    assert read('photo.png').dtype == np.uint8
    assert read('gray.png').shape == (40, 48)
    rgba = read('rgba.png')
    assert rgba.shape == (40, 48, 4)
    np.testing.assert_array_equal(rgba[..., 3], alpha)
    # The colour channels were deblurred exactly like the same image without alpha.
    np.testing.assert_array_equal(rgba[..., :3], read('eight.png'))


# --- errors ---------------------------------------------------------------------------

def test_unreadable_image_is_skipped_with_a_warning(tmp_path, weights, capsys):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    cv2.imwrite(str(inputs / 'good.png'), (smooth_image(24, 32) * 255).astype(np.uint8))
    (inputs / 'broken.png').write_bytes(b'not a png')
    assert sgenet_cli(inputs, tmp_path / 'out', weights) == 0
    assert 'broken.png' in capsys.readouterr().err
    assert visible(tmp_path / 'out') == ['good.png']


def test_wrong_arch_weights_name_the_keys(tmp_path, weights, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    status = run_cli('-i', tmp_path / 'a.png', '-o', tmp_path / 'out', '--weights', weights['probe'], '--arch-args',
                     TINY_SGENET_JSON)
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith('error:') and len(err.splitlines()) == 1
    assert 'missing keys' in err and 'stage1_shallow.weight' in err
    assert 'unexpected keys' in err and 'head.weight' in err


def test_other_configuration_weights_name_the_shapes(tmp_path, weights, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    status = run_cli('-i', tmp_path / 'a.png', '-o', tmp_path / 'out', '--weights', weights['sgenet'], '--arch-args',
                     '{"channels": [8, 12, 20], "num_rdm": 1}')
    err = capsys.readouterr().err
    assert status == 2 and 'other shapes' in err and '(20,' in err


def test_weights_prefer_ema_and_strip_module_prefix(tmp_path):
    net = TilingProbeNet()
    ema = {f'module.{k}': torch.full_like(v, 0.5) for k, v in net.state_dict().items()}
    plain = {f'module.{k}': torch.zeros_like(v) for k, v in net.state_dict().items()}
    path = tmp_path / 'ckpt.pth'
    torch.save({'params': plain, 'params_ema': ema}, path)
    assert load_weights(net, str(path)) == 'params_ema'
    assert all((v == 0.5).all() for v in net.state_dict().values())
    assert load_weights(net, str(path), param_key='params') == 'params'
    torch.save(net.state_dict(), tmp_path / 'raw.pth')
    assert load_weights(net, str(tmp_path / 'raw.pth')) is None


@pytest.mark.parametrize('case', ['missing weights', 'output is a file', 'tile <= overlap', 'fp16 on cpu',
                                  'output is input', 'bad arch args', 'missing input', 'tile off the grid'])
def test_bad_input_gives_one_error_line(tmp_path, weights, capsys, case):
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'file').write_text('')
    args = {
        'missing weights': ['-i', image, '-o', tmp_path / 'o', '--weights', tmp_path / 'nope.pth'],
        'output is a file': ['-i', image, '-o', tmp_path / 'file', '--weights', weights['sgenet']],
        'tile <= overlap': ['-i', image, '-o', tmp_path / 'o', '--weights', weights['sgenet'], '--tile', 32,
                            '--tile-overlap', 32],
        'fp16 on cpu': ['-i', image, '-o', tmp_path / 'o', '--weights', weights['sgenet'], '--precision', 'fp16'],
        'output is input': ['-i', tmp_path, '-o', tmp_path, '--weights', weights['sgenet']],
        'bad arch args': ['-i', image, '-o', tmp_path / 'o', '--weights', weights['sgenet'], '--arch-args', '{oops'],
        'missing input': ['-i', tmp_path / 'nothing', '-o', tmp_path / 'o', '--weights', weights['sgenet']],
        'tile off the grid': ['-i', image, '-o', tmp_path / 'o', '--weights', weights['sgenet'], '--tile', 66],
    }[case]
    if case != 'bad arch args':
        args += ['--arch-args', TINY_SGENET_JSON]
    status = run_cli(*args)
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith('error:') and len(err.splitlines()) == 1, err
    expected = {'missing weights': 'nope.pth', 'output is a file': 'not a folder', 'tile <= overlap': 'larger than',
                'fp16 on cpu': 'CUDA', 'output is input': 'is the input', 'bad arch args': '--arch-args',
                'missing input': 'does not exist', 'tile off the grid': 'multiple of 4'}[case]
    assert expected in err


# --- nothing lost: existing files, output folders ---------------------------------------

def visible(folder):
    """The file names in ``folder`` but deblur's hidden record of its results."""
    return sorted(name for name in os.listdir(folder) if name != RESULTS_RECORD)


def test_files_deblur_did_not_write_are_never_replaced(tmp_path, weights, capsys):
    photos, out = tmp_path / 'photos', tmp_path / 'out'
    photos.mkdir()
    out.mkdir()
    rgb = (smooth_image(24, 32) * 255).astype(np.uint8)
    cv2.imwrite(str(photos / 'a.jpg'), rgb)
    cv2.imwrite(str(out / 'a.png'), rgb[::-1])  # the user's own a.png, which a.jpg's result would replace
    own = (out / 'a.png').read_bytes()

    for flags in ((), ('--overwrite',)):  # --overwrite replaces only earlier results of deblur
        assert sgenet_cli(photos / 'a.jpg', out, weights, *flags) == 2
        err = capsys.readouterr().err
        assert f'{out}/a.png already exists and is not an unchanged result of an earlier deblur run' in err
        assert len(err.splitlines()) == 1
        assert (out / 'a.png').read_bytes() == own and sorted(os.listdir(out)) == ['a.png']

    # The output folder holding the input (or inside it) is refused before any work.
    assert sgenet_cli(photos / 'a.jpg', photos, weights, '--overwrite') == 2
    assert f'-o {photos} contains the input {photos}/a.jpg' in capsys.readouterr().err
    assert sgenet_cli(photos, photos / 'deblurred', weights) == 2
    assert f'-o {photos}/deblurred is inside the input {photos}' in capsys.readouterr().err
    assert sorted(os.listdir(photos)) == ['a.jpg']


def test_overwrite_replaces_earlier_results_but_not_edited_ones(tmp_path, weights, capsys):
    photos, out = tmp_path / 'photos', tmp_path / 'out'
    photos.mkdir()
    for name in ('a', 'b'):
        cv2.imwrite(str(photos / f'{name}.png'), (smooth_image(24, 32, ord(name)) * 255).astype(np.uint8))
    assert sgenet_cli(photos, out, weights) == 0
    assert sgenet_cli(photos, out, weights, '--overwrite') == 0  # its own results: replaced
    (out / 'b.png').write_bytes((out / 'b.png').read_bytes() + b'edited')  # the user changed one since
    capsys.readouterr()
    assert sgenet_cli(photos, out, weights, '--overwrite') == 2
    assert f'{out}/b.png already exists and is not an unchanged result' in capsys.readouterr().err
    assert (out / 'b.png').read_bytes().endswith(b'edited')


def test_a_second_run_does_not_replace_earlier_results(tmp_path, weights, capsys):
    for folder, seed in (('first', 0), ('second', 1)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / 'a.png'), (smooth_image(24, 32, seed) * 255).astype(np.uint8))
        cv2.imwrite(str(tmp_path / folder / f'{folder}_only.png'), (smooth_image(24, 32) * 255).astype(np.uint8))
    assert sgenet_cli(tmp_path / 'first', tmp_path / 'out', weights) == 0
    earlier = (tmp_path / 'out' / 'a.png').read_bytes()
    assert sgenet_cli(tmp_path / 'second', tmp_path / 'out', weights) == 2
    assert f'{tmp_path}/out/a.png already exists' in capsys.readouterr().err
    assert (tmp_path / 'out' / 'a.png').read_bytes() == earlier
    assert visible(tmp_path / 'out') == ['a.png', 'first_only.png'], 'nothing written, not even new names'


def test_skip_existing_finishes_an_interrupted_run(tmp_path, weights, capsys):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    for index in range(3):
        cv2.imwrite(str(inputs / f'{index}.png'), (smooth_image(24, 32, index) * 255).astype(np.uint8))
    assert sgenet_cli(inputs / '0.png', tmp_path / 'out', weights) == 0  # the run that was interrupted
    first = (tmp_path / 'out' / '0.png').read_bytes()
    capsys.readouterr()
    assert sgenet_cli(inputs, tmp_path / 'out', weights, '--skip-existing') == 0
    assert f'Deblurred 2 image(s) into {tmp_path}/out; kept 1 existing result(s)' in capsys.readouterr().out
    assert (tmp_path / 'out' / '0.png').read_bytes() == first
    assert visible(tmp_path / 'out') == ['0.png', '1.png', '2.png']
    assert sgenet_cli(inputs, tmp_path / 'out', weights, '--skip-existing') == 0
    assert 'Nothing to do' in capsys.readouterr().out


def test_two_inputs_with_one_result_name_are_refused(tmp_path, weights, capsys):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    for name in ('a.jpg', 'a.png'):
        cv2.imwrite(str(inputs / name), (smooth_image(24, 32) * 255).astype(np.uint8))
    assert sgenet_cli(inputs, tmp_path / 'out', weights, '--overwrite') == 2
    err = capsys.readouterr().err
    assert f'{inputs}/a.jpg and {inputs}/a.png would both be written to {tmp_path}/out/a.png' in err
    assert not (tmp_path / 'out').exists()


def test_a_file_appearing_during_the_run_is_not_replaced(tmp_path):
    from basicsr_sgenet.inference.image_io import read_image, write_image
    cv2.imwrite(str(tmp_path / 'in.png'), np.zeros((8, 8, 3), np.uint8))
    image = read_image(str(tmp_path / 'in.png'))
    (tmp_path / 'out.png').write_bytes(b'someone else')
    with pytest.raises(InferenceError, match='out.png was created by someone else'):
        write_image(str(tmp_path / 'out.png'), image.rgb, image)
    assert (tmp_path / 'out.png').read_bytes() == b'someone else'
    write_image(str(tmp_path / 'out.png'), image.rgb, image, overwrite=True)
    assert cv2.imread(str(tmp_path / 'out.png')).shape == (8, 8, 3)
    assert visible(tmp_path) == ['in.png', 'out.png']


def test_temporary_files_of_a_killed_run_are_removed(tmp_path, weights):
    cv2.imwrite(str(tmp_path / 'a.png'), (smooth_image(24, 32) * 255).astype(np.uint8))
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess_pid_that_exited()
    (out / f'.a.png.tmp-{dead}').write_bytes(b'half an image')  # a kill -9 while writing a.png
    (out / f'.b.png.tmp-{dead}').write_bytes(b'not ours to judge')  # not a result of this run
    assert sgenet_cli(tmp_path / 'a.png', out, weights) == 0
    assert visible(out) == [f'.b.png.tmp-{dead}', 'a.png']


def subprocess_pid_that_exited():
    import subprocess
    import sys
    child = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    return int(child.stdout)


def test_unwritable_output_is_refused_before_any_work(tmp_path, weights, capsys, monkeypatch):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    read_only = tmp_path / 'ro'
    read_only.mkdir(mode=0o555)
    real_access = os.access
    # What a non-root user sees for a read-only folder (root may write there regardless).
    monkeypatch.setattr(os, 'access', lambda path, mode, *args, **kwargs: False if str(path) == str(read_only) and
                        mode & os.W_OK else real_access(path, mode, *args, **kwargs))
    # Weights that do not fit the network: had it been built first, that would be the error.
    misfit = ('--arch-args', '{"channels": [8, 12, 20]}')
    assert sgenet_cli(tmp_path / 'a.png', read_only / 'out', weights, *misfit) == 2
    err = capsys.readouterr().err
    assert f'{read_only}/out cannot be created: no permission to create folders in {read_only}' in err
    assert sgenet_cli(tmp_path / 'a.png', read_only, weights, *misfit) == 2
    assert f'{read_only} is not writable' in capsys.readouterr().err
    assert os.listdir(read_only) == []


@pytest.mark.parametrize('extra, message', [(['--tile', 66], '--tile 66'),
                                            (['--arch-args', '{"channels": [8, 12, 20]}'], 'does not fit')])
def test_no_output_folder_until_the_network_and_tiles_are_checked(tmp_path, weights, capsys, extra, message):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    assert sgenet_cli(tmp_path / 'a.png', tmp_path / 'new' / 'out', weights, *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'new').exists()


def test_no_readable_input_is_an_error_and_leaves_no_folder(tmp_path, weights, capsys):
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    assert sgenet_cli(tmp_path / 'broken.png', tmp_path / 'new' / 'out', weights) == 2
    err = capsys.readouterr().err
    assert f'error: No input image could be read ({tmp_path}/broken.png)' in err
    assert not (tmp_path / 'new').exists()


@pytest.mark.parametrize('overlap, warned', [(0, True), (8, True), (16, False), (64, False)])
def test_small_tile_overlap_warns_naming_the_flag(tmp_path, weights, capsys, overlap, warned):
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    assert sgenet_cli(tmp_path / 'a.png', tmp_path / 'out', weights, '--tile', 96, '--tile-overlap', overlap) == 0
    err = capsys.readouterr().err
    assert (f'warning: --tile-overlap {overlap}' in err and 'use --tile-overlap 64' in err) == warned, err


@pytest.mark.parametrize('refusal, message', [(['--arch-args', '{"channels": [8, 12, 20]}'], 'does not fit'),
                                              (['--tile', 66], '--tile 66')])
def test_a_refused_run_prints_its_error_and_no_tile_overlap_warning(tmp_path, weights, capsys, refusal, message):
    # The warning is for runs that happen: a refused one is one error line, nothing else.
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    assert sgenet_cli(tmp_path / 'a.png', tmp_path / 'out', weights, '--tile', 96, '--tile-overlap', 0,
                      *refusal) == 2
    err = capsys.readouterr().err
    assert message in err and 'warning' not in err and len(err.splitlines()) == 1, err


# --- what cameras and editors put beside the pixels -------------------------------------

@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_is_applied_as_viewers_apply_it(tmp_path, orientation):
    from PIL import Image, ImageOps

    from basicsr_sgenet.inference.image_io import read_image
    rgb = (smooth_image(24, 32, orientation) * 255).astype(np.uint8)
    rgb[:4, :6] = (255, 0, 0)  # a marked corner: any wrong turn or flip moves it
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / 'phone.png', exif=exif)
    with Image.open(tmp_path / 'phone.png') as stored:
        shown = np.asarray(ImageOps.exif_transpose(stored).convert('RGB'))
    image = read_image(str(tmp_path / 'phone.png'))
    assert image.orientation == orientation
    np.testing.assert_array_equal(np.round(image.rgb * 255).astype(np.uint8), shown)


def test_phone_photo_result_is_upright_and_keeps_its_colour_profile(tmp_path, weights):
    from PIL import Image, ImageCms
    rgb = (smooth_image(24, 32) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers turn it 90 degrees clockwise
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
    Image.fromarray(rgb).save(tmp_path / 'phone.jpg', exif=exif, icc_profile=profile, quality=95)
    assert sgenet_cli(tmp_path / 'phone.jpg', tmp_path / 'out', weights) == 0
    with Image.open(tmp_path / 'out' / 'phone.png') as result:
        assert result.size == (24, 32)  # width x height: upright, as viewers show the photo
        assert result.info.get('icc_profile') == profile
        assert result.getexif().get(0x0112) in (None, 1)
        result.load()


def test_truncated_jpeg_is_refused_not_restored(tmp_path, weights, capsys):
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'cut.jpg'), rgb)
    data = (tmp_path / 'cut.jpg').read_bytes()
    (tmp_path / 'cut.jpg').write_bytes(data[:len(data) * 3 // 4])
    assert cv2.imread(str(tmp_path / 'cut.jpg')) is not None  # OpenCV alone decodes it, grey below the cut
    assert sgenet_cli(tmp_path / 'cut.jpg', tmp_path / 'out', weights) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith('error:')] == [
        f'error: No input image could be read ({tmp_path}/cut.jpg); nothing was written']
    assert f'{tmp_path}/cut.jpg is damaged: it is truncated' in err
    assert not (tmp_path / 'out').exists()


def test_cmyk_and_greyscale_jpeg_and_16_bit_tiff_are_read(tmp_path):
    from PIL import Image

    from basicsr_sgenet.inference.image_io import read_image
    rgb = (smooth_image(24, 32) * 255).astype(np.uint8)
    Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'cmyk.jpg', quality=98)
    with Image.open(tmp_path / 'cmyk.jpg') as cmyk:
        expected = np.asarray(cmyk.convert('RGB')).astype(np.float32) / 255
    assert np.abs(read_image(str(tmp_path / 'cmyk.jpg')).rgb - expected).max() < 0.03
    Image.fromarray(rgb[..., 0]).save(tmp_path / 'grey.jpg')
    assert read_image(str(tmp_path / 'grey.jpg')).grayscale
    cv2.imwrite(str(tmp_path / 'deep.tif'), rgb.astype(np.uint16) * 257)
    deep = read_image(str(tmp_path / 'deep.tif'))
    assert deep.dtype == np.uint16 and np.abs(deep.rgb * 255 - rgb[..., ::-1]).max() < 1e-3
