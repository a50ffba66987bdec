"""SGENet's training loss: Charbonnier plus a Laplacian edge term, summed over every
supervised output image, each compared with the ground truth average-pooled to its scale.

    L = loss_weight * sum_i w_i * [ Charbonnier(I_i, Y_i) + edge_weight * Edge(I_i, Y_i) ]

Registered as ``MultiScaleCharbonnierEdgeLoss`` (BasicSR already owns ``CharbonnierLoss``)::

    pixel_opt:
      type: MultiScaleCharbonnierEdgeLoss
      loss_weight: 1.0
      eps: !!float 1e-3
      edge_weight: 0.05
      strict: false          # true: only final, stage2_cem2, stage2_cem3 (Eq. 2 read literally)
      output_weights: ~      # e.g. {sam: 0.5, stage1_cem3: 0.25}; default 1.0 each
"""
from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from basicsr_sgenet.archs.arch_util import FINAL_KEY

# Eq. 2 of the paper sums over the three scales of the last stage only.
STRICT_OUTPUT_KEYS = ('final', 'stage2_cem2', 'stage2_cem3')

# Binomial-like 5-tap Gaussian used by MPRNet's edge loss (and Burt & Adelson's pyramid).
GAUSSIAN_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)


def charbonnier(pred, target, eps):
    """Mean over all elements of sqrt((pred - target)^2 + eps^2)."""
    diff = pred - target
    return torch.sqrt(diff * diff + eps * eps).mean()


@LOSS_REGISTRY.register()
class MultiScaleCharbonnierEdgeLoss(nn.Module):
    """Charbonnier + edge loss over SGENet's (deeply) supervised outputs.

    Args:
        loss_weight (float): Multiplies the whole sum. Default: 1.0.
        eps (float): Charbonnier constant; eps^2 goes inside the root, so identical images
            cost exactly ``eps`` per term. Default: 1e-3 (the paper's value).
        edge_weight (float): Weight of the Laplacian edge term (the paper's lambda). Default: 0.05.
        strict (bool): False (default): every image the network returns is supervised (deep
            supervision). True: only ``final``, ``stage2_cem2`` and ``stage2_cem3``, the
            literal reading of the paper's Eq. 2.
        output_weights (dict | None): Per-output weight by key; outputs not named weigh 1.0.
            A key that is not a supervised output is an error at the first forward.
        reduction (str): Only 'mean' (per-pixel average inside each term).

    ``forward(pred, target)`` takes the network's output, either one image (N, C, H, W)
    or a dict of images, and the full-resolution ground truth. An image at 1/f of the
    ground truth's size (f a power of two, read from the shapes) is compared with
    ``avg_pool2d(target, f)``. ``terms(pred, target)`` returns each output's weighted
    contribution, for logging; ``forward`` is their sum.
    """

    def __init__(self, loss_weight=1.0, eps=1e-3, edge_weight=0.05, strict=False, output_weights=None,
                 reduction='mean'):
        super().__init__()
        if reduction != 'mean':
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: reduction must be "mean", got {reduction!r} '
                             '(each term is a per-pixel mean; other reductions are not defined for it).')
        if not eps > 0:
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: eps must be > 0, got {eps!r}.')
        if edge_weight < 0:
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: edge_weight must be >= 0, got {edge_weight!r}.')
        self.loss_weight = float(loss_weight)
        self.eps = float(eps)
        self.edge_weight = float(edge_weight)
        self.strict = bool(strict)
        self.output_weights = self._checked_output_weights(output_weights)
        # Kept in float64 and cast per call, so fp64 inputs get the exact taps. Non-persistent:
        # follows .to(device) but stays out of state_dicts and checkpoints.
        taps = torch.tensor(GAUSSIAN_TAPS, dtype=torch.float64)
        self.register_buffer('gaussian_kernel', torch.outer(taps, taps)[None, None], persistent=False)

    @staticmethod
    def _checked_output_weights(output_weights):
        if output_weights is None:
            return {}
        if not isinstance(output_weights, dict):
            raise ValueError('MultiScaleCharbonnierEdgeLoss: output_weights must be a mapping of output key to '
                             f'weight, got {type(output_weights).__name__}.')
        checked = {}
        for key, weight in output_weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f'MultiScaleCharbonnierEdgeLoss: output_weights[{key!r}] must be a number >= 0, '
                                 f'got {weight!r}.')
            checked[str(key)] = float(weight)
        return checked

    # ----- the two per-image terms -------------------------------------------------

    def gaussian_blur(self, images):
        """Depthwise 5x5 Gaussian with replicate padding (same size out as in)."""
        channels = images.shape[1]
        kernel = self.gaussian_kernel.to(images.dtype).expand(channels, 1, -1, -1)
        pad = kernel.shape[-1] // 2
        return F.conv2d(F.pad(images, (pad, pad, pad, pad), mode='replicate'), kernel, groups=channels)

    def laplacian_band(self, images):
        """The finest band of a Laplacian pyramid: the image minus its blurred, decimated and
        re-expanded copy. Expansion inserts zeros and blurs; the factor 4 restores the mean
        that three of every four zero samples take away."""
        decimated = self.gaussian_blur(images)[..., ::2, ::2]
        zero_inserted = torch.zeros_like(images)
        zero_inserted[..., ::2, ::2] = decimated * 4
        return images - self.gaussian_blur(zero_inserted)

    def image_loss(self, pred, target):
        """Charbonnier + edge_weight * Charbonnier of the Laplacian bands, for one image pair."""
        loss = charbonnier(pred, target, self.eps)
        if self.edge_weight:
            loss = loss + self.edge_weight * charbonnier(self.laplacian_band(pred), self.laplacian_band(target),
                                                         self.eps)
        return loss

    # ----- which outputs, at which scale ------------------------------------------

    def supervised_outputs(self, pred):
        """The (key, image) pairs this loss supervises, in the network's order."""
        outputs = pred if isinstance(pred, dict) else {FINAL_KEY: pred}
        for key, image in outputs.items():
            if not torch.is_tensor(image):
                raise ValueError(f'MultiScaleCharbonnierEdgeLoss: output {key!r} is a {type(image).__name__}, '
                                 'expected an image tensor (N, C, H, W).')
        if self.strict:
            selected = [(key, outputs[key]) for key in outputs if key in STRICT_OUTPUT_KEYS]
            if not selected:
                raise ValueError(f'MultiScaleCharbonnierEdgeLoss: strict=True supervises {list(STRICT_OUTPUT_KEYS)}, '
                                 f'but the network returned none of them (keys: {list(outputs)}).')
        else:
            selected = list(outputs.items())
        unknown = sorted(set(self.output_weights) - {key for key, _ in selected})
        if unknown:
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: output_weights names {unknown}, which are not '
                             f'supervised outputs (supervised: {[key for key, _ in selected]}'
                             f'{", strict=True" if self.strict else ""}).')
        return selected

    @staticmethod
    def scale_factor(key, image, target):
        """How many times smaller than the ground truth ``image`` is, checked to be a power of two."""
        if image.dim() != 4 or target.dim() != 4:
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: output {key!r} {tuple(image.shape)} and ground truth '
                             f'{tuple(target.shape)} must both be (N, C, H, W).')
        if image.shape[:2] != target.shape[:2]:
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: output {key!r} {tuple(image.shape)} does not match the '
                             f'ground truth {tuple(target.shape)} in batch size or channels.')
        height, width = image.shape[-2:]
        gt_height, gt_width = target.shape[-2:]
        # The power of two f with floor(gt / f) == output size, both ways: floor, because that
        # is the size avg_pool2d (and a x0.5 resize) gives when gt is not a multiple of f.
        # At most one f fits for sizes >= 1.
        factor = 1
        while gt_height // factor > height:
            factor *= 2
        if height < 1 or (gt_height // factor, gt_width // factor) != (height, width):
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: output {key!r} is {height}x{width}, which is not the '
                             f'ground truth {gt_height}x{gt_width} shrunk by a power of two in both directions.')
        return factor

    # ----- entry points -----------------------------------------------------------

    def terms(self, pred, target):
        """Each supervised output's weighted loss (``loss_weight`` included), by key."""
        # Computed in at least fp32 and outside any autocast region: bf16/fp16 would round
        # away the eps^2 = 1e-6 floor and the small Laplacian differences.
        compute_dtype = torch.promote_types(target.dtype, torch.float32)
        with torch.autocast(device_type=target.device.type, enabled=False):
            target = target.to(compute_dtype)
            targets_by_factor = {1: target}
            losses = OrderedDict()
            for key, image in self.supervised_outputs(pred):
                factor = self.scale_factor(key, image, target)
                if factor not in targets_by_factor:
                    targets_by_factor[factor] = F.avg_pool2d(target, factor)
                weight = self.loss_weight * self.output_weights.get(key, 1.0)
                losses[key] = weight * self.image_loss(image.to(compute_dtype), targets_by_factor[factor])
        return losses

    def forward(self, pred, target, **kwargs):
        """Total loss. ``kwargs`` (e.g. BasicSR's pixel ``weight``) are not supported."""
        if kwargs.get('weight') is not None:
            raise ValueError('MultiScaleCharbonnierEdgeLoss does not support element-wise weight.')
        return sum(self.terms(pred, target).values())
