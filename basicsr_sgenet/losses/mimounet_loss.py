"""MIMO-UNet's training loss: multi-scale L1 plus L1 between 2-D Fourier transforms.

    L = loss_weight * sum_s [ L1(I_s, Y_s) + fft_weight * L1(FFT(I_s), FFT(Y_s)) ]

over the full, 1/2 and 1/4 resolution outputs (``final``, ``scale2``, ``scale3``). As in
the authors' code: the FFT term compares the real and imaginary parts of the full,
unnormalised 2-D FFT (not amplitudes), and the ground truth at 1/f comes from one
bilinear resize of the full-resolution image by 1/f (align_corners=False, no
antialiasing). At 1/2 that equals 2x2 averaging; at 1/4 it is the mean of the centre
2x2 of each 4x4 block, not a 4x4 average.

With a network that returns one image (FFTformer) it is L1 + fft_weight * FFT L1 on that
image alone: FFTformer's ``L1Loss`` + ``FFTLoss`` (weight 0.1), the same two terms.
"""
import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch.nn import functional as F

from basicsr_sgenet.losses.multi_output import MultiOutputLoss


@LOSS_REGISTRY.register()
class MultiScaleL1FFTLoss(MultiOutputLoss):
    """Args:
        loss_weight (float): multiplies every term. Default 1.0.
        fft_weight (float): weight of the frequency term. Default 0.1 (MIMO-UNet's).
        output_weights (dict | None): per-output weight by key (default 1.0).

    Call and outputs: see ``MultiOutputLoss``.
    """

    def __init__(self, loss_weight=1.0, fft_weight=0.1, output_weights=None):
        if isinstance(fft_weight, bool) or not isinstance(fft_weight, (int, float)) or fft_weight < 0:
            raise ValueError(f'MultiScaleL1FFTLoss: fft_weight must be a number >= 0, got {fft_weight!r}.')
        super().__init__(loss_weight, None, output_weights)
        self.fft_weight = float(fft_weight)

    def downscale(self, target, factor):
        return F.interpolate(target, scale_factor=1 / factor, mode='bilinear', align_corners=False)

    def image_loss(self, pred, target):
        loss = F.l1_loss(pred, target)
        if self.fft_weight:
            spectrum = lambda image: torch.view_as_real(torch.fft.fft2(image))  # noqa: E731
            loss = loss + self.fft_weight * F.l1_loss(spectrum(pred), spectrum(target))
        return loss
