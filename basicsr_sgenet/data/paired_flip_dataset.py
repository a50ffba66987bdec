"""PairedFlipDataset: BasicSR's PairedImageDataset with the paper's augmentation.

SGENet trains on random crops with horizontal and vertical flips. BasicSR's ``use_rot``
flips vertically *and* transposes (90-degree rotations), which the paper does not do, so
this dataset offers ``use_hflip`` and ``use_vflip`` instead and refuses ``use_rot``.
"""
import os
import random

import numpy as np
from torchvision.transforms.functional import normalize

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import paired_random_crop
from basicsr.utils import FileClient, bgr2ycbcr, imfrombytes, img2tensor
from basicsr.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class PairedFlipDataset(PairedImageDataset):
    """Blurred (lq) / sharp (gt) pairs of the same size, from LMDBs, a meta_info file or
    folders, exactly as PairedImageDataset finds them (``dataroot_lq``, ``dataroot_gt``,
    ``io_backend``, ``meta_info_file``, ``filename_tmpl``, ``mean``/``std``, ``color``).

    Training options (``phase: train``):
        gt_size (int): side of the random square crop, taken at the same place in both
            images. Required; must not exceed any image's height or width.
        use_hflip (bool): flip left-right with probability 1/2. Default False.
        use_vflip (bool): flip upside-down with probability 1/2, independently. Default False.
        use_rot: not supported (must be absent or false).

    ``scale`` must be 1 (or absent): blurred and sharp images have the same size. In
    validation and testing, a pair whose sizes differ is an error naming its key, where
    PairedImageDataset would silently crop the sharp image.
    """

    def __init__(self, opt):
        name = opt.get('name', type(self).__name__)
        if opt.get('use_rot'):
            raise ValueError(f'Dataset "{name}": PairedFlipDataset does not do use_rot (BasicSR\'s use_rot also '
                             'transposes, which the SGENet recipe does not); use use_hflip / use_vflip, or '
                             'PairedImageDataset if you want rotations.')
        if opt.get('scale', 1) != 1:
            raise ValueError(f'Dataset "{name}": scale is {opt["scale"]}, but PairedFlipDataset pairs images of the '
                             'same size (deblurring); set scale: 1.')
        if opt.get('phase') == 'train':
            gt_size = opt.get('gt_size')
            if not isinstance(gt_size, int) or isinstance(gt_size, bool) or gt_size < 1:
                raise ValueError(f'Dataset "{name}": gt_size (the training crop size) must be a positive integer, '
                                 f'got {gt_size!r}.')
        for key in ('dataroot_lq', 'dataroot_gt'):
            root = opt.get(key)
            if root is None or not os.path.isdir(root):
                raise FileNotFoundError(f'Dataset "{name}": {key} {root!r} is not a folder. Prepare the data first '
                                        '(scripts/prepare_gopro.py, scripts/prepare_hide.py) or fix the path.')
            if opt['io_backend']['type'] == 'lmdb' and not os.path.isfile(os.path.join(root, 'meta_info.txt')):
                raise FileNotFoundError(f'Dataset "{name}": {key} {root} has no meta_info.txt; it is not a complete '
                                        'BasicSR LMDB.')
        super().__init__(opt)
        self.name = name

    def _load(self, path, client_key):
        data = self.file_client.get(path, client_key)
        if data is None:  # an LMDB returns None for a key it does not hold
            raise KeyError(f'Dataset "{self.name}": key "{path}" is listed in meta_info.txt but not stored in '
                           f'{self.opt["dataroot_" + client_key]}; re-create that LMDB.')
        return imfrombytes(data, float32=True)

    def __getitem__(self, index):
        if self.file_client is None:
            backend_opt = dict(self.io_backend_opt)
            self.file_client = FileClient(backend_opt.pop('type'), **backend_opt)

        lq_path, gt_path = self.paths[index]['lq_path'], self.paths[index]['gt_path']
        img_lq, img_gt = self._load(lq_path, 'lq'), self._load(gt_path, 'gt')
        if img_lq.shape != img_gt.shape:
            raise ValueError(f'Dataset "{self.name}": blurred {lq_path} is {img_lq.shape[1]}x{img_lq.shape[0]} but '
                             f'sharp {gt_path} is {img_gt.shape[1]}x{img_gt.shape[0]} (width x height).')

        if self.opt['phase'] == 'train':
            gt_size = self.opt['gt_size']
            height, width = img_gt.shape[:2]
            if height < gt_size or width < gt_size:
                raise ValueError(f'Dataset "{self.name}": {gt_path} is {width}x{height}, smaller than gt_size '
                                 f'{gt_size}; lower gt_size, or prepare larger sub-images (--crop-size).')
            img_gt, img_lq = paired_random_crop(img_gt, img_lq, gt_size, 1, gt_path)
            img_gt, img_lq = paired_flip([img_gt, img_lq], self.opt.get('use_hflip', False),
                                         self.opt.get('use_vflip', False))

        if self.opt.get('color') == 'y':
            img_gt = bgr2ycbcr(img_gt, y_only=True)[..., None]
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]

        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.mean is not None or self.std is not None:
            normalize(img_lq, self.mean, self.std, inplace=True)
            normalize(img_gt, self.mean, self.std, inplace=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': lq_path, 'gt_path': gt_path}


def paired_flip(images, hflip, vflip):
    """The same random left-right and/or upside-down flip applied to every HWC image.

    Copies make the arrays contiguous again (img2tensor needs positive strides)."""
    flip_lr = hflip and random.random() < 0.5
    flip_ud = vflip and random.random() < 0.5
    flipped = []
    for image in images:
        if flip_lr:
            image = image[:, ::-1]
        if flip_ud:
            image = image[::-1]
        flipped.append(np.ascontiguousarray(image))
    return flipped
