"""Tiny GoPro-, HIDE-, RealBlur- and RSBlur-layout trees for tests.

Each sharp image is random noise in [0, 200); its blurred partner is the sharp image plus
BLUR_OFFSET, so any misaligned crop or flip shows up as a difference other than the offset.
"""
import os

import cv2
import numpy as np

BLUR_OFFSET = 10
HEIGHT, WIDTH = 40, 56
GOPRO_SEQUENCES = ('GOPR0001_07_00', 'GOPR0002_11_00')
GOPRO_FRAMES = ('000001', '000002', '000003')
HIDE_NAMES = {'test-close-ups': ('1fromGOPR0950', '2fromGOPR0950'), 'test-long-shot': ('3fromGOPR1000',)}


def write_png(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, image), path


def random_sharp(rng, height=HEIGHT, width=WIDTH):
    return rng.integers(0, 200, size=(height, width, 3), dtype=np.uint8)


def make_gopro_tree(root, seed=0, sequences=GOPRO_SEQUENCES, frames=GOPRO_FRAMES):
    """``root/{train,test}/<sequence>/{blur,blur_gamma,sharp}/<frame>.png``; returns
    {(split, key): sharp image (BGR)}."""
    rng = np.random.default_rng(seed)
    sharp_images = {}
    for split in ('train', 'test'):
        for sequence in sequences:
            for frame in frames:
                sharp = random_sharp(rng)
                sequence_dir = os.path.join(root, split, sequence)
                write_png(os.path.join(sequence_dir, 'sharp', f'{frame}.png'), sharp)
                write_png(os.path.join(sequence_dir, 'blur', f'{frame}.png'), sharp + BLUR_OFFSET)
                write_png(os.path.join(sequence_dir, 'blur_gamma', f'{frame}.png'), sharp + 2 * BLUR_OFFSET)
                sharp_images[(split, f'{sequence}_{frame}')] = sharp
    return sharp_images


def make_hide_tree(root, seed=1, names=HIDE_NAMES, extra_ground_truth=()):
    """``root/test/<subset>/<name>.png`` and ``root/GT/<name>.png``; returns {name: sharp}."""
    rng = np.random.default_rng(seed)
    sharp_images = {}
    for subset, subset_names in names.items():
        for name in subset_names:
            sharp = random_sharp(rng)
            write_png(os.path.join(root, 'GT', f'{name}.png'), sharp)
            write_png(os.path.join(root, 'test', subset, f'{name}.png'), sharp + BLUR_OFFSET)
            sharp_images[name] = sharp
    for name in extra_ground_truth:
        write_png(os.path.join(root, 'GT', f'{name}.png'), random_sharp(rng))
    return sharp_images


REALBLUR_FOLDERS = {'J': 'RealBlur-J_ECC_IMCORR_centroid_itensity_ref',
                    'R': 'RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref'}
# split: [(scene, index)]; lists name the ground truth first, end lines with a space (as the authors' do)
REALBLUR_SPLITS = {'train': [('scene001', 1), ('scene001', 2), ('scene003', 1)], 'test': [('scene230', 7)]}
RSBLUR_SPLITS = {'train': [('0019', '000722'), ('0019', '000723')], 'val': [('0014', '000422')],
                 'test': [('0001', '000022'), ('0001', '000023')]}


def make_realblur_tree(root, seed=2):
    """``root/RealBlur-{J,R}_.../<scene>/{gt,blur}/{gt,blur}_<i>.png`` and the list files
    ``root/RealBlur_{J,R}_{train,test}_list.txt``; returns {(variant, split, key): sharp}."""
    rng = np.random.default_rng(seed)
    sharp_images = {}
    for variant, folder in REALBLUR_FOLDERS.items():
        for split, frames in REALBLUR_SPLITS.items():
            lines = []
            for scene, index in frames:
                gt, blur = f'{folder}/{scene}/gt/gt_{index}.png', f'{folder}/{scene}/blur/blur_{index}.png'
                sharp = random_sharp(rng)
                write_png(os.path.join(root, gt), sharp)
                write_png(os.path.join(root, blur), sharp + BLUR_OFFSET)
                lines.append(f'{gt} {blur} \n')
                sharp_images[(variant, split, f'{scene}_{index}')] = sharp
            with open(os.path.join(root, f'RealBlur_{variant}_{split}_list.txt'), 'w') as f:
                f.writelines(lines)
    return sharp_images


def make_rsblur_tree(root, lists, seed=3):
    """``root/RSBlur/<day>/<scene>/{gt/gt_sharp.png,real_blur/real_blur.png,avg65_img/avg_blur.png}``
    and ``lists/RSBlur_real_{train,val,test}.txt``; returns {(split, key): sharp}."""
    rng = np.random.default_rng(seed)
    sharp_images = {}
    os.makedirs(lists, exist_ok=True)
    for split, frames in RSBLUR_SPLITS.items():
        lines = []
        for day, scene in frames:
            folder = os.path.join(root, 'RSBlur', day, scene)
            sharp = random_sharp(rng)
            write_png(os.path.join(folder, 'gt', 'gt_sharp.png'), sharp)
            write_png(os.path.join(folder, 'real_blur', 'real_blur.png'), sharp + BLUR_OFFSET)
            write_png(os.path.join(folder, 'avg65_img', 'avg_blur.png'), sharp + 2 * BLUR_OFFSET)
            lines.append(f'RSBlur/{day}/{scene}/gt/gt_sharp.png RSBlur/{day}/{scene}/real_blur/real_blur.png\n')
            sharp_images[(split, f'{day}_{scene}')] = sharp
        with open(os.path.join(lists, f'RSBlur_real_{split}.txt'), 'w') as f:
            f.writelines(lines)
    return sharp_images


def read_lmdb(path):
    """{key: decoded BGR image} of a BasicSR LMDB."""
    import lmdb
    env = lmdb.open(path, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {key.decode(): cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_UNCHANGED)
                    for key, value in txn.cursor()}
    finally:
        env.close()


def read_meta_info(path):
    with open(path) as f:
        return f.read().splitlines()


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder`` (lock.mdb excluded: readers touch it)."""
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            if name != 'lock.mdb':
                path = os.path.join(parent, name)
                with open(path, 'rb') as f:
                    files[os.path.relpath(path, folder)] = f.read()
    return files
