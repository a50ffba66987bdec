"""NAFNet's training loss: the negative PSNR of each image, averaged over the batch.

    L = loss_weight * 10 / ln(10) * mean_n ln( mean_chw (pred - target)^2 + 1e-8 )

which is -PSNR (in dB, for images in [0, 1]) up to a constant, so minimising it
maximises the mean per-image PSNR rather than the PSNR of the mean error.
"""
import math

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import final_image


def log_mse(pred, target):
    """10 / ln(10) * mean_n ln(mean_chw (pred - target)^2 + 1e-8): -PSNR in dB up to a
    constant, averaged over the images; in fp32, outside autocast."""
    with torch.autocast(device_type=target.device.type, enabled=False):
        squared = (pred.float() - target.float())**2
        return 10 / math.log(10) * torch.log(squared.mean(dim=(1, 2, 3)) + 1e-8).mean()


@LOSS_REGISTRY.register()
class PSNRLoss(nn.Module):
    """Args:
        loss_weight (float): multiplies the loss. Default 1.0.
        reduction (str): only 'mean' (over the images of the batch).

    ``forward(pred, target)``: ``pred`` an image (N, C, H, W) or a network's training dict
    (its ``final`` image is used).
    """

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        if reduction != 'mean':
            raise ValueError(f'PSNRLoss: reduction must be "mean", got {reduction!r}.')
        self.loss_weight = float(loss_weight)

    def forward(self, pred, target, **kwargs):
        if kwargs.get('weight') is not None:
            raise ValueError('PSNRLoss does not support element-wise weight.')
        pred = final_image(pred)
        if pred.shape != target.shape:
            raise ValueError(f'PSNRLoss: prediction {tuple(pred.shape)} and ground truth {tuple(target.shape)} differ.')
        return self.loss_weight * log_mse(pred, target)
