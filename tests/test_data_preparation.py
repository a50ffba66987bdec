"""GoPro / HIDE / RealBlur / RSBlur preparation: contents, keys, meta_info, re-runs, and bad input."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from basicsr_sgenet.data.preparation import SubimageGrid, prepare_gopro, prepare_hide, prepare_realblur, prepare_rsblur
from basicsr_sgenet.integration.errors import PreparationError
from conftest import REPO_ROOT, python_env, run_python
from tiny_datasets import (BLUR_OFFSET, GOPRO_FRAMES, GOPRO_SEQUENCES, HIDE_NAMES, REALBLUR_FOLDERS, RSBLUR_SPLITS,
                           make_gopro_tree, make_hide_tree, make_realblur_tree, make_rsblur_tree, read_lmdb,
                           read_meta_info, snapshot, write_png)

GRID = SubimageGrid(crop_size=24, step=12, thresh_size=0)


def quiet(*_):
    pass


def gopro(src, out, **kwargs):
    kwargs = {'grid': GRID, 'workers': 1, 'progress': False, 'log': quiet, **kwargs}
    return prepare_gopro(str(src), str(out), **kwargs)


@pytest.fixture
def gopro_src(tmp_path):
    src = tmp_path / 'GOPRO_Large'
    return src, make_gopro_tree(str(src))


# ----------------------------------------------------------------------------- contents


def test_subimage_grid_covers_the_frame_like_basicsr():
    assert GRID.origins(40) == [0, 12, 16]  # last one flush with the edge: 4 px were left over
    assert GRID.origins(56) == [0, 12, 24, 32]
    assert SubimageGrid(24, 12, thresh_size=4).origins(40) == [0, 12]  # a 4 px leftover is dropped
    assert SubimageGrid(512, 256).boxes(720, 1280)[-1] == (208, 768)
    assert len(SubimageGrid(512, 256).boxes(720, 1280)) == 8
    with pytest.raises(PreparationError, match='step'):
        SubimageGrid(24, 30)


def test_gopro_lmdbs_hold_the_source_crops_and_frames(gopro_src, tmp_path):
    src, sharp_images = gopro_src
    out = tmp_path / 'GoPro'
    results = gopro(src, out)
    assert [status for _, status, _ in results] == ['built', 'built']

    boxes = GRID.boxes(40, 56)
    train_blur, train_sharp = read_lmdb(str(out / 'train/blur.lmdb')), read_lmdb(str(out / 'train/sharp.lmdb'))
    expected_keys = sorted(f'{seq}_{frame}_s{i + 1:03d}' for seq in GOPRO_SEQUENCES for frame in GOPRO_FRAMES
                           for i in range(len(boxes)))
    assert sorted(train_blur) == sorted(train_sharp) == expected_keys
    for seq in GOPRO_SEQUENCES:
        for frame in GOPRO_FRAMES:
            sharp = sharp_images[('train', f'{seq}_{frame}')]
            for i, (top, left) in enumerate(boxes):
                key = f'{seq}_{frame}_s{i + 1:03d}'
                crop = sharp[top:top + 24, left:left + 24]
                np.testing.assert_array_equal(train_sharp[key], crop)
                np.testing.assert_array_equal(train_blur[key], crop + BLUR_OFFSET)

    for side in ('blur', 'sharp'):
        assert read_meta_info(str(out / f'train/{side}.lmdb/meta_info.txt')) == [
            f'{key}.png (24,24,3) 1' for key in expected_keys]

    test_blur, test_sharp = read_lmdb(str(out / 'test/blur.lmdb')), read_lmdb(str(out / 'test/sharp.lmdb'))
    test_keys = sorted(key for split, key in sharp_images if split == 'test')
    assert sorted(test_blur) == sorted(test_sharp) == test_keys
    for key in test_keys:
        np.testing.assert_array_equal(test_sharp[key], sharp_images[('test', key)])
        np.testing.assert_array_equal(test_blur[key], sharp_images[('test', key)] + BLUR_OFFSET)
    assert read_meta_info(str(out / 'test/blur.lmdb/meta_info.txt')) == [f'{k}.png (40,56,3) 1' for k in test_keys]


def test_blur_gamma_and_full_frame_training(gopro_src, tmp_path):
    src, sharp_images = gopro_src
    out = tmp_path / 'GoPro'
    gopro(src, out, splits=['train'], grid=None, blur_folder='blur_gamma')
    blur = read_lmdb(str(out / 'train/blur.lmdb'))
    assert sorted(blur) == sorted(key for split, key in sharp_images if split == 'train')
    key = sorted(blur)[0]
    np.testing.assert_array_equal(blur[key], sharp_images[('train', key)] + 2 * BLUR_OFFSET)
    assert not (out / 'test').exists()


def test_several_workers_write_the_same_lmdbs(gopro_src, tmp_path):
    src, _ = gopro_src
    gopro(src, tmp_path / 'one', splits=['train'])
    gopro(src, tmp_path / 'two', splits=['train'], workers=2)
    for side in ('blur', 'sharp'):
        one, two = read_lmdb(str(tmp_path / f'one/train/{side}.lmdb')), read_lmdb(str(tmp_path / f'two/train/{side}.lmdb'))
        assert sorted(one) == sorted(two)
        assert all(np.array_equal(one[key], two[key]) for key in one)


# ----------------------------------------------------------------------------- re-runs


def test_rerun_skips_complete_splits_without_touching_them(gopro_src, tmp_path):
    src, _ = gopro_src
    out = tmp_path / 'GoPro'
    gopro(src, out)
    before = snapshot(str(out))
    results = gopro(src, out)
    assert [status for _, status, _ in results] == ['skipped', 'skipped']
    assert snapshot(str(out)) == before


def test_missing_split_is_built_next_to_a_complete_one(gopro_src, tmp_path):
    src, _ = gopro_src
    out = tmp_path / 'GoPro'
    gopro(src, out, splits=['test'])
    before = snapshot(str(out / 'test'))
    results = gopro(src, out)
    assert {plan.path.split(os.sep)[-1]: status for plan, status, _ in results} == {'train': 'built', 'test': 'skipped'}
    assert snapshot(str(out / 'test')) == before


def _truncate_data(lmdb_dir, size):
    path = os.path.join(lmdb_dir, 'data.mdb')
    os.truncate(path, size(os.path.getsize(path)) if callable(size) else size)


def _scramble_last_page_header(lmdb_dir):
    # The right size, so the header check passes, but a page header that sends LMDB past
    # the end of the file: reading the keys in this process would end it with SIGBUS.
    path = os.path.join(lmdb_dir, 'data.mdb')
    with open(path, 'r+b') as f:
        f.seek(os.path.getsize(path) - 4096 + 16)
        f.write(b'\xff' * 16)


@pytest.mark.parametrize('damage, message', [
    (lambda lmdb_dir: _truncate_data(lmdb_dir, 12 * 1024), r'data.mdb is truncated \(12288 bytes'),
    (lambda lmdb_dir: _truncate_data(lmdb_dir, lambda size: size // 2), 'data.mdb is truncated'),
    (_scramble_last_page_header, 'blur.lmdb is damaged|blur.lmdb cannot be read as an LMDB'),
    (lambda lmdb_dir: os.remove(os.path.join(lmdb_dir, 'meta_info.txt')), 'meta_info.txt is missing'),
    (lambda lmdb_dir: open(os.path.join(lmdb_dir, 'meta_info.txt'), 'a').write('extra_key.png (24,24,3) 1\n'),
     'listed in meta_info.txt'),
    (lambda lmdb_dir: os.remove(os.path.join(lmdb_dir, 'data.mdb')), 'no data.mdb'),
])
def test_damaged_existing_lmdb_is_an_error_and_kept_until_overwrite(gopro_src, tmp_path, damage, message):
    src, _ = gopro_src
    out = tmp_path / 'GoPro'
    gopro(src, out)
    damage(str(out / 'train/blur.lmdb'))
    before = snapshot(str(out))
    with pytest.raises(PreparationError, match=message) as error:
        gopro(src, out)
    assert str(out / 'train') in str(error.value) and '--overwrite' in str(error.value)
    assert snapshot(str(out)) == before  # nothing lost, nothing written

    gopro(src, out, overwrite=True)
    assert [status for _, status, _ in gopro(src, out)] == ['skipped', 'skipped']
    assert len(read_lmdb(str(out / 'train/blur.lmdb'))) == len(GOPRO_SEQUENCES) * len(GOPRO_FRAMES) * 12
    assert not [name for name in os.listdir(out) if name.startswith(('.incomplete', '.replaced'))]


def test_other_settings_or_foreign_data_are_errors(gopro_src, tmp_path):
    src, _ = gopro_src
    out = tmp_path / 'GoPro'
    gopro(src, out, splits=['train'])
    with pytest.raises(PreparationError, match="blur_folder: 'blur' there, 'blur_gamma' now"):
        gopro(src, out, splits=['train'], blur_folder='blur_gamma')
    with pytest.raises(PreparationError, match='crop_size'):
        gopro(src, out, splits=['train'], grid=SubimageGrid(20, 10))

    (out / 'test').mkdir()
    (out / 'test' / 'notes.txt').write_text('mine')
    with pytest.raises(PreparationError, match='not a complete dataset made by this tool'):
        gopro(src, out, splits=['test'])
    assert (out / 'test' / 'notes.txt').read_text() == 'mine'


def test_changed_source_is_detected(gopro_src, tmp_path):
    src, _ = gopro_src
    out = tmp_path / 'GoPro'
    gopro(src, out, splits=['test'])
    for folder in ('blur', 'blur_gamma', 'sharp'):
        shutil.copy(src / 'test' / GOPRO_SEQUENCES[0] / folder / '000001.png',
                    src / 'test' / GOPRO_SEQUENCES[0] / folder / '000009.png')
    with pytest.raises(PreparationError, match='1 source frames missing'):
        gopro(src, out, splits=['test'])


def test_leftover_partial_build_is_replaced(gopro_src, tmp_path):
    src, _ = gopro_src
    out = tmp_path / 'GoPro'
    leftover = out / '.incomplete-test'
    leftover.mkdir(parents=True)
    (leftover / 'junk').write_text('partial')
    messages = []
    gopro(src, out, splits=['test'], log=messages.append)
    assert not leftover.exists()
    assert any('interrupted' in message for message in messages)
    assert len(read_lmdb(str(out / 'test/blur.lmdb'))) == len(GOPRO_SEQUENCES) * len(GOPRO_FRAMES)


def test_leftovers_of_a_killed_overwrite_go_when_the_split_is_skipped(gopro_src, tmp_path):
    src, _ = gopro_src
    out = tmp_path / 'GoPro'
    gopro(src, out)
    # A run with --overwrite killed while building train (.incomplete-train) and one killed
    # while deleting the test split it had replaced (.replaced-test-<time>).
    for leftover in ('.incomplete-train', '.replaced-test-20250101-120000'):
        (out / leftover).mkdir()
        (out / leftover / 'data.mdb').write_bytes(b'\0' * 4096)
    (out / '.replaced-testing').mkdir()  # not a name this tool makes: left alone
    messages = []
    assert [status for _, status, _ in gopro(src, out, log=messages.append)] == ['skipped', 'skipped']
    assert sorted(name for name in os.listdir(out) if name.startswith('.')) == ['.prepare.lock', '.replaced-testing']
    assert sum('left by an interrupted run' in message for message in messages) == 2


def test_workers_die_with_the_preparing_process(tmp_path):
    # Two workers busy on (endless) tasks, as they are while decoding a large dataset; the
    # parent is killed with SIGKILL, which it cannot catch.
    started = tmp_path / 'started'
    started.mkdir()
    code = ('import os, sys, time\n'
            'from basicsr_sgenet.data.preparation.recipes import worker_map\n'
            'def work(index):\n'
            '    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()\n'
            '    time.sleep(600)\n'
            'with worker_map(2) as map_fn:\n'
            '    list(map_fn(work, [0, 1]))\n')
    parent = subprocess.Popen([sys.executable, '-c', code, str(started)], env=python_env())
    try:
        workers = wait_for(lambda: len(os.listdir(started)) == 2 and [int(name) for name in os.listdir(started)])
        assert workers, 'the workers did not start'
    finally:
        parent.kill()
        parent.wait()
    try:
        assert wait_for(lambda: not any(process_alive(pid) for pid in workers)), 'workers outlived their parent'
    finally:
        for pid in filter(process_alive, workers):  # without the fix: orphans sleeping for 10 minutes
            os.kill(pid, signal.SIGKILL)


def wait_for(condition, limit_s=60):
    """Poll ``condition`` until it returns something true (returned) or ``limit_s`` passes (None)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    return None


def process_alive(pid):
    """True while ``pid`` exists and is not a zombie (killed workers stay zombies until reaped)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


# ----------------------------------------------------------------------------- unwritable output


def test_output_that_cannot_be_written_is_refused_before_decoding(gopro_src, tmp_path, monkeypatch):
    from basicsr_sgenet.data.preparation import recipes
    src, _ = gopro_src
    monkeypatch.setattr(recipes, 'check_pairs', lambda *args: pytest.fail('images were decoded'))
    (tmp_path / 'file').write_text('')
    with pytest.raises(PreparationError, match=f'Output folder {tmp_path}/file exists and is not a folder'):
        gopro(src, tmp_path / 'file')
    with pytest.raises(PreparationError, match=f'{tmp_path}/file/GoPro cannot be created: {tmp_path}/file is a file'):
        gopro(src, tmp_path / 'file' / 'GoPro')
    read_only = tmp_path / 'ro'
    read_only.mkdir(mode=0o555)
    real_access = os.access
    # What a non-root user sees for a read-only folder (root may write there regardless).
    monkeypatch.setattr(os, 'access', lambda path, mode, *args, **kwargs: False if str(path) == str(read_only) and
                        mode & os.W_OK else real_access(path, mode, *args, **kwargs))
    with pytest.raises(PreparationError, match=f'Output folder {read_only} is not writable'):
        gopro(src, read_only)
    with pytest.raises(PreparationError, match=f'no permission to create folders in {read_only}'):
        gopro(src, read_only / 'GoPro')
    assert os.listdir(read_only) == []


def test_a_write_failure_is_one_error_and_leaves_nothing(gopro_src, tmp_path, monkeypatch):
    from basicsr.utils.lmdb_util import LmdbMaker
    src, _ = gopro_src

    def disk_full(*args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(LmdbMaker, 'put', disk_full)
    with pytest.raises(PreparationError, match=f'Writing {tmp_path}/GoPro/test failed .*No space left on device'):
        gopro(src, tmp_path / 'GoPro', splits=['test'])
    assert os.listdir(tmp_path / 'GoPro') == ['.prepare.lock']


# ----------------------------------------------------------------------------- bad input


def _remove(path):
    os.remove(path)


def _truncate(path):
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])


BAD_GOPRO_INPUTS = {
    'missing root': (lambda src: shutil.rmtree(src), '{src}'),
    'missing split': (lambda src: shutil.rmtree(src / 'test'), '{src}/test'),
    'missing sharp folder': (lambda src: shutil.rmtree(src / 'train/GOPR0002_11_00/sharp'),
                             '{src}/train/GOPR0002_11_00/sharp'),
    'unequal counts': (lambda src: _remove(src / 'train/GOPR0001_07_00/sharp/000002.png'),
                       '{src}/train/GOPR0001_07_00/blur/000002.png has no sharp counterpart'),
    'non-matching names': (lambda src: os.rename(src / 'test/GOPR0001_07_00/blur/000003.png',
                                                 src / 'test/GOPR0001_07_00/blur/000004.png'),
                           '{src}/test/GOPR0001_07_00/blur/000004.png has no sharp counterpart'),
    'size mismatch': (lambda src: write_png(str(src / 'train/GOPR0002_11_00/blur/000001.png'),
                                            np.zeros((40, 50, 3), np.uint8)),
                      'Size mismatch: {src}/train/GOPR0002_11_00/blur/000001.png is 50x40'),
    'truncated image': (lambda src: _truncate(src / 'test/GOPR0002_11_00/sharp/000003.png'),
                        'Cannot decode {src}/test/GOPR0002_11_00/sharp/000003.png'),
    'grey image': (lambda src: write_png(str(src / 'train/GOPR0001_07_00/sharp/000003.png'),
                                         np.zeros((40, 56), np.uint8)),
                   '{src}/train/GOPR0001_07_00/sharp/000003.png is a uint8 image with 1 channel'),
    'unusable key': (lambda src: [os.rename(src / f'test/GOPR0001_07_00/{folder}/000001.png',
                                            src / f'test/GOPR0001_07_00/{folder}/000001.v2.png')
                                  for folder in ('blur', 'sharp')],
                     '{src}/test/GOPR0001_07_00/blur/000001.v2.png: its key'),
}


@pytest.mark.parametrize('case', sorted(BAD_GOPRO_INPUTS))
def test_bad_gopro_input_names_the_file_and_writes_nothing(gopro_src, tmp_path, case):
    src, _ = gopro_src
    break_input, expected = BAD_GOPRO_INPUTS[case]
    break_input(src)
    out = tmp_path / 'GoPro'
    with pytest.raises(PreparationError) as error:
        gopro(src, out)
    assert expected.format(src=src) in str(error.value)
    assert not out.exists()


def test_frames_smaller_than_the_subimages_are_named(gopro_src, tmp_path):
    src, _ = gopro_src
    with pytest.raises(PreparationError, match=f'{src}/train/GOPR0001_07_00/blur/000001.png is 56x40, smaller'):
        gopro(src, tmp_path / 'GoPro', grid=SubimageGrid(48, 24))
    assert not (tmp_path / 'GoPro').exists()


def test_cli_prints_one_line_errors_and_builds(gopro_src, tmp_path):
    src, _ = gopro_src
    script = os.path.join(REPO_ROOT, 'scripts', 'prepare_gopro.py')
    out = tmp_path / 'GoPro'
    failed = run_python([script, '--input', str(tmp_path / 'nowhere'), '--output', str(out)], timeout=120)
    assert failed.returncode != 0
    assert failed.stderr.startswith('error: GoPro root') and 'Traceback' not in failed.stderr

    built = run_python([script, '--input', str(src), '--output', str(out), '--crop-size', '24', '--step', '12',
                        '--workers', '1', '--splits', 'test'], timeout=120)
    assert built.returncode == 0, built.stderr
    assert f'Wrote {out}/test' in built.stdout
    assert sorted(read_lmdb(str(out / 'test/sharp.lmdb'))) == sorted(
        f'{seq}_{frame}' for seq in GOPRO_SEQUENCES for frame in GOPRO_FRAMES)


# ----------------------------------------------------------------------------- HIDE


def hide(src, out, **kwargs):
    return prepare_hide(str(src), str(out), **{'workers': 1, 'progress': False, 'log': quiet, **kwargs})


def test_hide_lmdbs_all_and_per_subset(tmp_path):
    src = tmp_path / 'HIDE_dataset'
    sharp_images = make_hide_tree(str(src))
    out = tmp_path / 'HIDE'
    hide(src, out, separate_subsets=True)
    expected = {'test': sorted(sharp_images), **{subset: sorted(names) for subset, names in HIDE_NAMES.items()}}
    for unit, keys in expected.items():
        blur, sharp = read_lmdb(str(out / unit / 'blur.lmdb')), read_lmdb(str(out / unit / 'sharp.lmdb'))
        assert sorted(blur) == sorted(sharp) == keys
        for key in keys:
            np.testing.assert_array_equal(sharp[key], sharp_images[key])
            np.testing.assert_array_equal(blur[key], sharp_images[key] + BLUR_OFFSET)
        assert read_meta_info(str(out / unit / 'blur.lmdb/meta_info.txt')) == [f'{k}.png (40,56,3) 1' for k in keys]
    assert [status for _, status, _ in hide(src, out, separate_subsets=True)] == ['skipped'] * 3


def test_hide_folder_format(tmp_path):
    src = tmp_path / 'HIDE_dataset'
    sharp_images = make_hide_tree(str(src), extra_ground_truth=['99fromGOPR0000'])
    out = tmp_path / 'HIDE'
    messages = []
    hide(src, out, fmt='folder', subsets=['test-close-ups'], log=messages.append)
    keys = sorted(HIDE_NAMES['test-close-ups'])
    for side in ('blur', 'sharp'):
        assert sorted(os.listdir(out / 'test' / side)) == [f'{key}.png' for key in keys]
    import cv2
    for key in keys:
        np.testing.assert_array_equal(cv2.imread(str(out / 'test/sharp' / f'{key}.png')), sharp_images[key])
        np.testing.assert_array_equal(cv2.imread(str(out / 'test/blur' / f'{key}.png')), sharp_images[key] + BLUR_OFFSET)
    assert read_meta_info(str(out / 'test/meta_info.txt')) == [f'{key}.png (40,56,3) 1' for key in keys]
    assert [status for _, status, _ in hide(src, out, fmt='folder', subsets=['test-close-ups'])] == ['skipped']


def test_hide_bad_input_names_the_file(tmp_path):
    src = tmp_path / 'HIDE_dataset'
    make_hide_tree(str(src))
    os.remove(src / 'GT' / '3fromGOPR1000.png')
    with pytest.raises(PreparationError, match=f'{src}/test/test-long-shot/3fromGOPR1000.png has no sharp'):
        hide(src, tmp_path / 'HIDE')
    shutil.rmtree(src / 'test' / 'test-long-shot')
    with pytest.raises(PreparationError, match=f'{src}/test/test-long-shot does not exist'):
        hide(src, tmp_path / 'HIDE')
    assert not (tmp_path / 'HIDE').exists()


# ----------------------------------------------------------------------------- RealBlur / RSBlur


def realblur(src, out, **kwargs):
    return prepare_realblur(str(src), str(out), **{'workers': 1, 'progress': False, 'log': quiet, **kwargs})


def rsblur(src, out, **kwargs):
    return prepare_rsblur(str(src), str(out), **{'workers': 1, 'progress': False, 'log': quiet, 'grid': GRID,
                                                 'list_dir': str(src / 'lists'), **kwargs})


def assert_unit_holds(unit, expected):
    """``unit``/{blur,sharp}.lmdb hold exactly ``expected`` {key: sharp}, blur = sharp + offset."""
    blur, sharp = read_lmdb(str(unit / 'blur.lmdb')), read_lmdb(str(unit / 'sharp.lmdb'))
    assert sorted(blur) == sorted(sharp) == sorted(expected)
    for key, image in expected.items():
        np.testing.assert_array_equal(sharp[key], image)
        np.testing.assert_array_equal(blur[key], image + BLUR_OFFSET)
    assert read_meta_info(str(unit / 'blur.lmdb/meta_info.txt')) == [f'{k}.png (40,56,3) 1' for k in sorted(expected)]


def test_realblur_lmdbs_follow_the_list_files(tmp_path):
    src = tmp_path / 'RealBlur'
    sharp_images = make_realblur_tree(str(src))
    out = tmp_path / 'datasets'
    results = realblur(src, out)
    assert [(os.path.relpath(plan.path, out), status) for plan, status, _ in results] == [
        ('RealBlur_J/train', 'built'), ('RealBlur_J/test', 'built'), ('RealBlur_R/train', 'built'),
        ('RealBlur_R/test', 'built')]
    for (variant, split) in {(v, s) for v, s, _ in sharp_images}:
        assert_unit_holds(out / f'RealBlur_{variant}' / split,
                          {key: image for (v, s, key), image in sharp_images.items() if (v, s) == (variant, split)})
    assert sorted(read_lmdb(str(out / 'RealBlur_J/test/sharp.lmdb'))) == ['scene230_7']
    assert [status for _, status, _ in realblur(src, out)] == ['skipped'] * 4


def test_realblur_one_variant_lists_elsewhere_and_subimages(tmp_path):
    src = tmp_path / 'RealBlur'
    make_realblur_tree(str(src))
    (src / 'lists').mkdir()
    for name in os.listdir(src):
        if name.endswith('_list.txt'):
            os.rename(src / name, src / 'lists' / name)
    out = tmp_path / 'datasets'
    realblur(src, out, variants=['R'], splits=['train'], list_dir=str(src / 'lists'), grid=GRID)
    assert sorted(os.listdir(out)) == ['RealBlur_R']
    keys = sorted(read_lmdb(str(out / 'RealBlur_R/train/sharp.lmdb')))
    assert len(keys) == 3 * len(GRID.boxes(40, 56)) and keys[0] == 'scene001_1_s001'


def test_list_file_problems_name_the_file_and_line(tmp_path):
    src = tmp_path / 'RealBlur'
    make_realblur_tree(str(src))
    out = tmp_path / 'datasets'
    listed = src / 'RealBlur_J_train_list.txt'
    lines = listed.read_text().splitlines()
    listed.write_text('\n'.join(lines + ['only_one_path.png']) + '\n')
    with pytest.raises(PreparationError, match=f'{listed}, line 4: expected "<gt path> <blur path>"'):
        realblur(src, out)
    listed.write_text('\n'.join(lines) + '\n')
    os.remove(src / REALBLUR_FOLDERS['R'] / 'scene230/blur/blur_7.png')
    missing = f'{src}/{REALBLUR_FOLDERS["R"]}/scene230/blur/blur_7.png'
    with pytest.raises(PreparationError,
                       match=f'{missing} \\(named in {src}/RealBlur_R_test_list.txt, line 1\\) does not exist'):
        realblur(src, out)
    os.remove(src / 'RealBlur_R_test_list.txt')
    with pytest.raises(PreparationError, match=f'List file {src}/RealBlur_R_test_list.txt does not exist'):
        realblur(src, out)
    with pytest.raises(PreparationError, match=f'{tmp_path}/{REALBLUR_FOLDERS["J"]}, which .* does not exist: --input'):
        realblur(tmp_path, out, variants=['J'], list_dir=str(src))  # --input one level too high
    assert not out.exists()


def test_rsblur_lmdbs_real_blur_only(tmp_path):
    src = tmp_path / 'data'
    sharp_images = make_rsblur_tree(str(src), str(src / 'lists'))
    out = tmp_path / 'RSBlur'
    results = rsblur(src, out, splits=['val', 'test'])
    assert [(os.path.basename(plan.path), status) for plan, status, _ in results] == [('val', 'built'),
                                                                                     ('test', 'built')]
    for split in ('val', 'test'):
        assert_unit_holds(out / split, {key: image for (s, key), image in sharp_images.items() if s == split})
    rsblur(src, out, splits=['train'])
    keys = sorted(read_lmdb(str(out / 'train/blur.lmdb')))
    assert len(keys) == len(RSBLUR_SPLITS['train']) * len(GRID.boxes(40, 56)) and keys[0] == '0019_000722_s001'
    os.remove(src / 'lists' / 'RSBlur_real_val.txt')
    with pytest.raises(PreparationError, match=f'List file {src}/lists/RSBlur_real_val.txt does not exist'):
        rsblur(src, tmp_path / 'other')


def test_realblur_and_rsblur_clis(tmp_path):
    src = tmp_path / 'RealBlur'
    make_realblur_tree(str(src))
    out = tmp_path / 'datasets'
    script = os.path.join(REPO_ROOT, 'scripts', 'prepare_realblur.py')
    built = run_python([script, '--input', str(src), '--output', str(out), '--variants', 'J', '--splits', 'test',
                        '--workers', '1'], timeout=120)
    assert built.returncode == 0, built.stderr
    assert f'Wrote {out}/RealBlur_J/test' in built.stdout
    data = tmp_path / 'data'
    make_rsblur_tree(str(data), str(data / 'lists'))
    script = os.path.join(REPO_ROOT, 'scripts', 'prepare_rsblur.py')
    failed = run_python([script, '--input', str(data), '--output', str(tmp_path / 'RSBlur')], timeout=120)
    assert failed.returncode == 2 and failed.stderr.startswith(f'error: List file {data}/RSBlur_real_train.txt')
    assert 'Traceback' not in failed.stderr and not (tmp_path / 'RSBlur').exists()
