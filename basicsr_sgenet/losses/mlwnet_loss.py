"""MLWNet's training loss: multi-scale PSNR loss plus the wavelet filter-bank regulariser.

    L = loss_weight * sum_s (1 / f_s) * log_mse(I_s, area(Y, 1 / f_s)) + wavelet_weight * W

over the full, 1/2, 1/4 and 1/8 resolution images (``final``, ``scale2``, ``scale3``,
``scale4``; weights 1, 0.5, 0.25, 0.125), with ``log_mse`` NAFNet's PSNR loss (see
``psnr_loss.py``) and the ground truth at 1/f an area resize of the full-resolution image,
as in the authors' ``SRN_loss`` (basicsr/models/losses/losses.py). W is the ``wavelet``
entry of MLWNet's training output: how far each learnable wavelet's filters are from a
perfect-reconstruction, alias-free filter bank, summed over its wavelet blocks (the
authors' ``wavelet_opt: use_loss: true``, added with weight 1).
"""
from basicsr.utils.registry import LOSS_REGISTRY
from torch.nn import functional as F

from basicsr_sgenet.archs.mlwnet_arch import WAVELET_KEY
from basicsr_sgenet.losses.multi_output import MultiOutputLoss
from basicsr_sgenet.losses.psnr_loss import log_mse


def _non_negative_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f'MultiScalePSNRWaveletLoss: {name} must be a number >= 0, got {value!r}.')
    return float(value)


@LOSS_REGISTRY.register()
class MultiScalePSNRWaveletLoss(MultiOutputLoss):
    """Args:
        loss_weight (float): multiplies every image term. Default 1.0.
        wavelet_weight (float): weight of the network's ``wavelet`` regulariser (not
            multiplied by ``loss_weight``). Default 1.0; 0 turns it off. Positive with a
            network that returns no ``wavelet`` term is an error.
        output_weights (dict | None): per-output weight by key; default 1/f for an output
            at 1/f of the ground truth's size (the authors' 1, 0.5, 0.25, 0.125).
        reduction (str): only 'mean' (over the images of the batch).

    Call and outputs: see ``MultiOutputLoss``; ``terms`` also holds ``wavelet``, logged by
    ``DeblurModel`` as ``l_pix_wavelet``.
    """

    def __init__(self, loss_weight=1.0, wavelet_weight=1.0, output_weights=None, reduction='mean'):
        if reduction != 'mean':
            raise ValueError(f'MultiScalePSNRWaveletLoss: reduction must be "mean", got {reduction!r}.')
        super().__init__(_non_negative_number('loss_weight', loss_weight), None, output_weights)
        self.wavelet_weight = _non_negative_number('wavelet_weight', wavelet_weight)

    def default_output_weight(self, factor):
        return 1.0 / factor

    def downscale(self, target, factor):
        return F.interpolate(target, scale_factor=1 / factor, mode='area', recompute_scale_factor=True)

    def image_loss(self, pred, target):
        return log_mse(pred, target)

    def terms(self, pred, target):
        losses = super().terms(pred, target)
        if self.wavelet_weight:
            term = pred.get(WAVELET_KEY) if isinstance(pred, dict) else None
            if term is None:
                keys = list(pred) if isinstance(pred, dict) else ['final']
                raise ValueError(f'MultiScalePSNRWaveletLoss: wavelet_weight is {self.wavelet_weight:g} but the '
                                 f'network returned no {WAVELET_KEY!r} term (keys: {keys}); it is MLWNet\'s '
                                 'loss: set wavelet_weight: 0 for other networks.')
            losses[WAVELET_KEY] = self.wavelet_weight * term.float()
        return losses
