"""What every multi-output loss of the plugin shares: a per-image loss summed over the
images a network returns in training mode, each against the ground truth shrunk to its
size.

A network's training output is one image or a dict of images (``final`` first; see
``archs/arch_util.py``). An image at 1/f of the ground truth's size (f a power of two,
read from the shapes) is compared with ``downscale(target, f)``; subclasses define
``image_loss(pred, target)`` and, if not 2x2-average pooling, ``downscale``. ``terms``
returns each output's weighted contribution, for logging (``DeblurModel`` logs them as
``l_pix_<key>``); ``forward`` is their sum. Not registered itself (not a ``*_loss.py``).
"""
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from basicsr_sgenet.archs.arch_util import training_images


class MultiOutputLoss(nn.Module):
    """Base class. Args:
        loss_weight (float): multiplies every term.
        outputs (sequence of str | None): the output keys supervised; None: all of them.
        output_weights (dict | None): per-output weight by key (default 1.0, or what
            ``default_output_weight`` says); a key that is not a supervised output is an
            error at the first forward.
    """

    def __init__(self, loss_weight=1.0, outputs=None, output_weights=None):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.outputs = None if outputs is None else tuple(outputs)
        self.output_weights = self._checked_output_weights(output_weights)

    def _checked_output_weights(self, output_weights):
        if output_weights is None:
            return {}
        if not isinstance(output_weights, dict):
            raise ValueError(f'{type(self).__name__}: output_weights must be a mapping of output key to weight, '
                             f'got {type(output_weights).__name__}.')
        checked = {}
        for key, weight in output_weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f'{type(self).__name__}: output_weights[{key!r}] must be a number >= 0, '
                                 f'got {weight!r}.')
            checked[str(key)] = float(weight)
        return checked

    # ----- to be defined by subclasses ------------------------------------------------

    def image_loss(self, pred, target):
        raise NotImplementedError

    def downscale(self, target, factor):
        """The ground truth at 1/``factor`` of its size (floor, as avg_pool2d sizes it)."""
        return F.avg_pool2d(target, factor)

    def default_output_weight(self, factor):
        """Weight of an output at 1/``factor`` scale that ``output_weights`` does not name."""
        return 1.0

    def selection_note(self):
        """How ``outputs`` was set, for error messages (e.g. ', strict=True')."""
        return ''

    # ----- which outputs, at which scale ------------------------------------------------

    def supervised_outputs(self, pred):
        """The (key, image) pairs this loss supervises, in the network's order."""
        name = type(self).__name__
        outputs = training_images(pred)  # scalar terms (MLWNet's 'wavelet') are not images
        for key, image in outputs.items():
            if not torch.is_tensor(image):
                raise ValueError(f'{name}: output {key!r} is a {type(image).__name__}, expected an image tensor '
                                 '(N, C, H, W).')
        if self.outputs is None:
            selected = list(outputs.items())
        else:
            selected = [(key, outputs[key]) for key in outputs if key in self.outputs]
            if not selected:
                raise ValueError(f'{name}: supervises {list(self.outputs)}{self.selection_note()}, but the network '
                                 f'returned none of them (keys: {list(outputs)}).')
        unknown = sorted(set(self.output_weights) - {key for key, _ in selected})
        if unknown:
            raise ValueError(f'{name}: output_weights names {unknown}, which are not supervised outputs '
                             f'(supervised: {[key for key, _ in selected]}{self.selection_note()}).')
        return selected

    def scale_factor(self, key, image, target):
        """How many times smaller than the ground truth ``image`` is, checked to be a power of two."""
        name = type(self).__name__
        if image.dim() != 4 or target.dim() != 4:
            raise ValueError(f'{name}: output {key!r} {tuple(image.shape)} and ground truth {tuple(target.shape)} '
                             'must both be (N, C, H, W).')
        if image.shape[:2] != target.shape[:2]:
            raise ValueError(f'{name}: output {key!r} {tuple(image.shape)} does not match the ground truth '
                             f'{tuple(target.shape)} in batch size or channels.')
        height, width = image.shape[-2:]
        gt_height, gt_width = target.shape[-2:]
        # The power of two f with floor(gt / f) == output size, both ways: floor, because that
        # is the size avg_pool2d (and a x0.5 resize) gives when gt is not a multiple of f.
        # At most one f fits for sizes >= 1.
        factor = 1
        while gt_height // factor > height:
            factor *= 2
        if height < 1 or (gt_height // factor, gt_width // factor) != (height, width):
            raise ValueError(f'{name}: output {key!r} is {height}x{width}, which is not the ground truth '
                             f'{gt_height}x{gt_width} shrunk by a power of two in both directions.')
        return factor

    # ----- entry points -------------------------------------------------------------------

    def terms(self, pred, target):
        """Each supervised output's weighted loss (``loss_weight`` included), by key."""
        # Computed in at least fp32 and outside any autocast region: bf16/fp16 would round
        # away small differences (e.g. Charbonnier's eps^2 = 1e-6 floor).
        compute_dtype = torch.promote_types(target.dtype, torch.float32)
        with torch.autocast(device_type=target.device.type, enabled=False):
            target = target.to(compute_dtype)
            targets_by_factor = {1: target}
            losses = OrderedDict()
            for key, image in self.supervised_outputs(pred):
                factor = self.scale_factor(key, image, target)
                if factor not in targets_by_factor:
                    targets_by_factor[factor] = self.downscale(target, factor)
                weight = self.loss_weight * self.output_weights.get(key, self.default_output_weight(factor))
                losses[key] = weight * self.image_loss(image.to(compute_dtype), targets_by_factor[factor])
        return losses

    def forward(self, pred, target, **kwargs):
        """Total loss. ``kwargs`` (e.g. BasicSR's pixel ``weight``) are not supported."""
        if kwargs.get('weight') is not None:
            raise ValueError(f'{type(self).__name__} does not support element-wise weight.')
        return sum(self.terms(pred, target).values())
