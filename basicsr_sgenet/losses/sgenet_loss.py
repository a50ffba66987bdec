"""SGENet's (and MPRNet's) training loss: Charbonnier plus a Laplacian edge term, summed
over every supervised output image, each compared with the ground truth average-pooled
to its scale.

    L = loss_weight * sum_i w_i * [ Charbonnier(I_i, Y_i) + edge_weight * Edge(I_i, Y_i) ]

Registered as ``MultiScaleCharbonnierEdgeLoss`` (BasicSR already owns ``CharbonnierLoss``)::

    pixel_opt:
      type: MultiScaleCharbonnierEdgeLoss
      loss_weight: 1.0
      eps: !!float 1e-3
      edge_weight: 0.05
      strict: false          # true: only final, stage2_cem2, stage2_cem3 (Eq. 2 read literally)
      output_weights: ~      # e.g. {sam: 0.5, stage1_cem3: 0.25}; default 1.0 each

It is also MPRNet's loss: Charbonnier + 0.05 edge on each of its three stage outputs.
"""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch.nn import functional as F

from basicsr_sgenet.losses.multi_output import MultiOutputLoss

# Eq. 2 of the paper sums over the three scales of the last stage only.
STRICT_OUTPUT_KEYS = ('final', 'stage2_cem2', 'stage2_cem3')

# Binomial-like 5-tap Gaussian used by MPRNet's edge loss (and Burt & Adelson's pyramid).
GAUSSIAN_TAPS = (0.05, 0.25, 0.4, 0.25, 0.05)


def charbonnier(pred, target, eps):
    """Mean over all elements of sqrt((pred - target)^2 + eps^2)."""
    diff = pred - target
    return torch.sqrt(diff * diff + eps * eps).mean()


@LOSS_REGISTRY.register()
class MultiScaleCharbonnierEdgeLoss(MultiOutputLoss):
    """Charbonnier + edge loss over a network's (deeply) supervised outputs.

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

    Call and outputs: see ``MultiOutputLoss``; targets are ``avg_pool2d(target, f)``.
    """

    def __init__(self, loss_weight=1.0, eps=1e-3, edge_weight=0.05, strict=False, output_weights=None,
                 reduction='mean'):
        if reduction != 'mean':
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: reduction must be "mean", got {reduction!r} '
                             '(each term is a per-pixel mean; other reductions are not defined for it).')
        if not eps > 0:
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: eps must be > 0, got {eps!r}.')
        if edge_weight < 0:
            raise ValueError(f'MultiScaleCharbonnierEdgeLoss: edge_weight must be >= 0, got {edge_weight!r}.')
        super().__init__(loss_weight, STRICT_OUTPUT_KEYS if strict else None, output_weights)
        self.eps = float(eps)
        self.edge_weight = float(edge_weight)
        self.strict = bool(strict)
        # Kept in float64 and cast per call, so fp64 inputs get the exact taps. Non-persistent:
        # follows .to(device) but stays out of state_dicts and checkpoints.
        taps = torch.tensor(GAUSSIAN_TAPS, dtype=torch.float64)
        self.register_buffer('gaussian_kernel', torch.outer(taps, taps)[None, None], persistent=False)

    def selection_note(self):
        return ', strict=True' if self.strict else ''

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
