"""Stripformer's training loss: Charbonnier + edge (SGENet's and MPRNet's, reused) plus a
contrastive term that pulls the restored image's VGG19 features towards the sharp
image's and pushes them away from the blurred input's::

    L = loss_weight * [ Charbonnier(I, Y) + edge_weight * Edge(I, Y)
                        + contrastive_weight * Contrast(I, Y, X) ]

    Contrast = sum_p m_p * d(I, Y)_p / (d(I, X)_p + 1e-7) / sum_p m_p

with d the channel-mean absolute difference of VGG19 relu3_1 features (1/4 resolution)
and m the mask of blurred pixels (mean |Y - X| over the channels > 0.01), shrunk to 1/4
by one bilinear resize, as in the authors' ``models/losses.py`` (weights 0.05 and 0.0005,
Charbonnier eps 1e-3). As theirs, VGG sees the images shifted to [-0.5, 0.5] (their data
range) without ImageNet normalisation.

The VGG19 ImageNet weights are not downloaded: ``vgg19_weights`` names a file holding
torchvision's VGG19 state dict (``vgg19-dcbb9e9d.pth``, the file the authors' code has
torchvision fetch). ``contrastive_weight: 0`` trains without the term and without VGG::

    pixel_opt:
      type: StripformerLoss
      edge_weight: 0.05
      contrastive_weight: 0.0005
      vgg19_weights: experiments/pretrained_models/vgg19-dcbb9e9d.pth

The term needs the blurred input: ``DeblurModel`` passes it to ``terms(pred, target,
blurred)`` for a loss with ``uses_blurred_input``. Logged terms: ``final`` (Charbonnier +
edge) and ``contrastive``.
"""
import os

import torch
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn
from torch.nn import functional as F

from basicsr_sgenet.archs.arch_util import final_image
from basicsr_sgenet.integration.errors import OptionError, first_line
from basicsr_sgenet.losses.sgenet_loss import MultiScaleCharbonnierEdgeLoss

# torchvision's vgg19().features up to relu3_1 (the authors' slice ``features[:12]``):
# (index, in, out) of each conv; a ReLU follows each, 2x2 max pools sit at 4 and 9.
VGG19_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256))
VGG19_LAYERS = 12
VGG19_FILE = 'vgg19-dcbb9e9d.pth'  # torchvision's ImageNet VGG19, as the authors use
# The authors' images are in [-0.5, 0.5]; the plugin's in [0, 1].
DATA_SHIFT = 0.5
# A pixel is "blurred" (supervised by the contrastive term) where the sharp and blurred
# images differ by more than this, averaged over the channels.
BLUR_THRESHOLD = 0.01
RATIO_EPS = 1e-7


def vgg19_relu3_1():
    """torchvision's ``vgg19().features[:12]`` with the same indices (so its state-dict
    keys are ``<index>.weight``), frozen."""
    convs = {index: nn.Conv2d(in_channels, out_channels, 3, padding=1)
             for index, in_channels, out_channels in VGG19_CONVS}
    pools = (4, 9)
    layers = [convs[index] if index in convs else nn.MaxPool2d(2, 2) if index in pools else nn.ReLU()
              for index in range(VGG19_LAYERS)]
    features = nn.Sequential(*layers)
    features.requires_grad_(False)
    return features.eval()


def vgg19_weights_problem(path):
    """Why ``path`` cannot give the VGG19 features (a sentence naming the file), or None."""
    return _read_vgg19_features(path)[1]


def _read_vgg19_features(path):
    """(state dict of the needed VGG19 layers, None), or (None, why not)."""
    if path is None:
        return None, 'is not set'
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        return None, f'{path} does not exist'
    try:
        state = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 -- any unreadable file: say so in one line
        return None, f'{path} cannot be read as a torch state dict ({first_line(err)})'
    if not isinstance(state, dict):
        return None, f'{path} holds a {type(state).__name__}, not a state dict'
    features = {}
    for index, in_channels, out_channels in VGG19_CONVS:
        for name, shape in (('weight', (out_channels, in_channels, 3, 3)), ('bias', (out_channels, ))):
            key = f'features.{index}.{name}'
            value = state.get(key)
            if not torch.is_tensor(value) or tuple(value.shape) != shape:
                found = 'missing' if value is None else tuple(getattr(value, 'shape', ()))
                return None, (f'{path} is not torchvision\'s VGG19 state dict ({key} should be {list(shape)}, '
                              f'found {found})')
            features[f'{index}.{name}'] = value.float().clone()
    return features, None


def _vgg_option_error(problem, contrastive_weight):
    return OptionError(f'StripformerLoss: vgg19_weights {problem}; the contrastive term (contrastive_weight '
                       f'{contrastive_weight:g}) needs torchvision\'s ImageNet VGG19 weights ({VGG19_FILE}), '
                       'or set contrastive_weight: 0 to train without it.')


@LOSS_REGISTRY.register()
class StripformerLoss(MultiScaleCharbonnierEdgeLoss):
    """Args:
        loss_weight (float): multiplies every term. Default 1.0.
        eps (float): Charbonnier constant. Default 1e-3.
        edge_weight (float): weight of the Laplacian edge term. Default 0.05.
        contrastive_weight (float): weight of the contrastive term; 0 turns it (and VGG)
            off. Default 0.0005.
        vgg19_weights (str | None): torchvision VGG19 state dict file; required when
            ``contrastive_weight`` > 0.

    Errors: a missing or unusable ``vgg19_weights`` is an ``OptionError`` naming the key
    and file (one ``error:`` line from the entry points).
    """

    uses_blurred_input = True

    def __init__(self, loss_weight=1.0, eps=1e-3, edge_weight=0.05, contrastive_weight=0.0005, vgg19_weights=None,
                 reduction='mean'):
        if isinstance(contrastive_weight, bool) or not isinstance(contrastive_weight, (int, float)) or \
                contrastive_weight < 0:
            raise OptionError(f'StripformerLoss: contrastive_weight must be a number >= 0, got {contrastive_weight!r}.')
        super().__init__(loss_weight, eps, edge_weight, reduction=reduction)
        self.contrastive_weight = float(contrastive_weight)
        self.vgg = None
        if self.contrastive_weight:
            state, problem = _read_vgg19_features(vgg19_weights)
            if problem:
                raise _vgg_option_error(problem, self.contrastive_weight)
            self.vgg = vgg19_relu3_1()
            self.vgg.load_state_dict(state)

    @staticmethod
    def option_problem(settings):
        """Why these loss options cannot work (``key: ...``), or None; checked before a run starts."""
        weight = settings.get('contrastive_weight', 0.0005)
        if isinstance(weight, (int, float)) and not isinstance(weight, bool) and weight > 0:
            problem = vgg19_weights_problem(settings.get('vgg19_weights'))
            if problem:
                return (f'vgg19_weights {problem}; the contrastive term (contrastive_weight {weight:g}) needs '
                        f'torchvision\'s ImageNet VGG19 weights ({VGG19_FILE}), or set contrastive_weight: 0')
        return None

    def train(self, mode=True):
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()  # frozen feature extractor: never in training mode
        return self

    def contrastive(self, restored, sharp, blurred):
        """The authors' masked ratio of VGG feature distances (see the module docstring)."""
        with torch.no_grad():
            sharp_features = self.vgg(sharp - DATA_SHIFT)
            blurred_features = self.vgg(blurred - DATA_SHIFT)
            mask = ((sharp - blurred).abs().mean(1, keepdim=True) > BLUR_THRESHOLD).to(sharp.dtype)
            mask = F.interpolate(mask, scale_factor=0.25, mode='bilinear', align_corners=False)
        restored_features = self.vgg(restored - DATA_SHIFT)
        to_sharp = (restored_features - sharp_features).abs().mean(1, keepdim=True)
        to_blurred = (restored_features - blurred_features).abs().mean(1, keepdim=True)
        # No blurred pixel at all: the authors' 0 / 0 is NaN; here the term is 0.
        return (to_sharp / (to_blurred + RATIO_EPS) * mask).sum() / mask.sum().clamp_min(1e-12)

    def terms(self, pred, target, blurred=None):
        losses = super().terms(pred, target)
        if self.vgg is None:
            return losses
        if blurred is None:
            raise ValueError('StripformerLoss: the contrastive term needs the blurred input: call '
                             'terms(pred, target, blurred) (DeblurModel does).')
        restored = final_image(pred)
        if restored.shape != target.shape or blurred.shape != target.shape:
            raise ValueError(f'StripformerLoss: restored {tuple(restored.shape)}, ground truth {tuple(target.shape)} '
                             f'and blurred {tuple(blurred.shape)} images must have one shape.')
        if min(target.shape[-2:]) < 4:
            raise ValueError(f'StripformerLoss: the contrastive term compares VGG features at 1/4 size; images of '
                             f'{tuple(target.shape[-2:])} are too small (at least 4x4).')
        with torch.autocast(device_type=target.device.type, enabled=False):  # fp32 at least, as the other terms
            dtype = torch.promote_types(target.dtype, torch.float32)
            self.vgg.to(dtype)
            term = self.contrastive(restored.to(dtype), target.to(dtype), blurred.to(dtype))
        losses['contrastive'] = self.loss_weight * self.contrastive_weight * term
        return losses

    def forward(self, pred, target, blurred=None, **kwargs):
        if kwargs.get('weight') is not None:
            raise ValueError('StripformerLoss does not support element-wise weight.')
        return sum(self.terms(pred, target, blurred).values())
