"""The building blocks of SGENet, smallest first.

The paper's formulas leave much open; docs/architecture.md says what each block does
here and why. All convolutions are bias-free and the activation is ReLU.

    RDM          dilated residual module: the feature extractor at every U-Net level
    Down, Up     change of scale between U-Net levels
    CEM          contextual-aware enhancement module on the decoder skips: predicts the
                 image at its scale and uses it to recalibrate the features
    PlainSkipFusion   CEM without its image branch (the paper's "w/o CEM" ablation)
    SAM          MPRNet's supervised attention module, between the two stages
    CSAM         cross-stage selective aggregation: stage-1 features into stage 2
    CrossStageSum     MPRNet's plain summation in place of CSAM (ablation)

``RDM``, ``CEM`` and ``CSAM`` are registered in BasicSR's ``ARCH_REGISTRY``, so other
option files can build them by name. This module is not auto-imported (only
``*_arch.py`` files are); ``sgenet_arch.py`` imports it, which registers them.
"""
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

# DAVANet-style dilations of the two recursive paths of an RDM (docs/architecture.md).
DEFAULT_RDM_DILATIONS = ((2, 1), (3, 1))

# CEM's additive skip: the merge before its ReLU (default) or after it (the reference
# design's form, which can die; docs/architecture.md, "CEM's skip").
CEM_SKIPS = ('pre_activation', 'post_activation')


def conv3x3(in_channels, out_channels, dilation=1):
    """Bias-free 3x3 convolution that keeps the spatial size."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)


def conv1x1(in_channels, out_channels):
    """Bias-free 1x1 convolution (channel mixing only)."""
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class DilatedPath(nn.Sequential):
    """relu -> conv(d_1) -> relu -> conv(d_2) -> ...: one recursive path of an RDM."""

    def __init__(self, channels, dilations):
        layers = []
        for index, dilation in enumerate(dilations):
            # The first ReLU must not act in place: its input is still needed by the
            # residual sums of the RDM. Later ones act on fresh conv outputs.
            layers += [nn.ReLU(inplace=index > 0), conv3x3(channels, channels, dilation)]
        super().__init__(*layers)


@ARCH_REGISTRY.register()
class RDM(nn.Module):
    """Dilated residual module: dilated convolutions with a recursive residual design.

    With the default dilations ((2, 1), (3, 1)) it is five 3x3 convolutions::

        h0 = conv3(x)
        h1 = h0 + conv3_dil1(relu(conv3_dil2(relu(h0))))
        h2 = h0 + conv3_dil1(relu(conv3_dil3(relu(h1))))
        return x + h2

    Every path adds back to the block entry ``h0`` (multi-path recursive residual), and
    each path feeds on the previous path's result, so the receptive field grows path
    by path while the gradient reaches ``h0`` directly.

    Args:
        channels (int): feature channels in and out.
        dilations (sequence of sequences of int): one inner sequence per recursive path,
            giving the dilations of that path's 3x3 convolutions in order.
    """

    def __init__(self, channels, dilations=DEFAULT_RDM_DILATIONS):
        super().__init__()
        self.entry = conv3x3(channels, channels)
        self.paths = nn.ModuleList(DilatedPath(channels, path_dilations) for path_dilations in dilations)

    def forward(self, x):
        entry = self.entry(x)
        h = entry
        for path in self.paths:
            h = entry + path(h)
        return x + h


class Down(nn.Module):
    """Halve the resolution (2x2 averaging: the same as bilinear x0.5 on the even sizes the
    network pads to), then a 1x1 convolution to the next level's width."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = conv1x1(in_channels, out_channels)

    def forward(self, x):
        return self.conv(F.avg_pool2d(x, 2))


class Up(nn.Module):
    """A 1x1 convolution to the finer level's width, then bilinear x2 upsampling: the same
    as upsampling first (both linear and bias-free, so they commute) for a quarter of
    the multiply-adds."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv = conv1x1(in_channels, out_channels)

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=2, mode='bilinear', align_corners=False)


@ARCH_REGISTRY.register()
class CEM(nn.Module):
    """Contextual-aware enhancement module on a U-Net skip connection (paper Fig. 2).

    At decoder level s it merges the encoder skip ``F_s`` with the coarser decoder
    output ``F_prev``, predicts a residual image ``R_s`` and the restored image
    ``I_s = B_s + R_s`` (Eq. 1, supervised by the loss), and uses them to recalibrate
    the features::

        X    = cat[F_s, Up(F_prev)]        (X = F_s at the coarsest level)
        M    = conv3(X);  F_ms = relu(M)
        R_s  = conv3(F_ms -> image);  I_s = B_s + R_s
        F_r  = conv3(R_s -> C)              residual features
        A    = sigmoid(conv3(I_s -> C))     attention from the predicted image
        out  = A * conv3(cat[F_ms, F_r]) + M          (skip 'pre_activation', default)
        out  = A * conv3(cat[F_ms, F_r]) + F_ms       (skip 'post_activation')

    The pre-activation skip keeps a level alive when every unit of ``relu(M)`` is off;
    why that matters: docs/architecture.md, "CEM's skip".

    Args:
        channels (int): width C of this level (of ``F_s`` and of the output).
        coarser_channels (int | None): width of ``F_prev``; None for the coarsest level,
            which has no coarser input.
        image_channels (int): channels of the images ``B_s``, ``R_s``, ``I_s``.
        skip (str): 'pre_activation' (``+ M``) or 'post_activation' (``+ F_ms``).

    ``forward(skip, blurred, coarser=None)`` returns ``(features, image)``.
    """

    def __init__(self, channels, coarser_channels=None, image_channels=3, skip='pre_activation'):
        super().__init__()
        if skip not in CEM_SKIPS:
            raise ValueError(f'CEM: skip must be one of {", ".join(CEM_SKIPS)}, got {skip!r}')
        self.skip = skip
        self.up = None if coarser_channels is None else Up(coarser_channels, channels)
        merged_channels = channels if coarser_channels is None else 2 * channels
        self.merge = conv3x3(merged_channels, channels)
        self.to_residual = conv3x3(channels, image_channels)
        self.residual_features = conv3x3(image_channels, channels)
        self.image_attention = conv3x3(image_channels, channels)
        self.fuse = conv3x3(2 * channels, channels)

    def forward(self, skip, blurred, coarser=None):
        merged = skip if self.up is None else torch.cat([skip, self.up(coarser)], dim=1)
        merged = self.merge(merged)
        features = F.relu(merged)
        residual = self.to_residual(features)
        image = blurred + residual
        attention = torch.sigmoid(self.image_attention(image))
        fused = self.fuse(torch.cat([features, self.residual_features(residual)], dim=1))
        return attention * fused + (merged if self.skip == 'pre_activation' else features), image


class PlainSkipFusion(nn.Module):
    """A CEM reduced to its first step, ``relu(conv3(cat[F_s, Up(F_prev)]))``: an
    ordinary U-Net skip fusion with no image prediction (the paper's "w/o CEM").

    Same constructor and call as ``CEM`` (``skip`` is ignored: there is no skip to place);
    ``forward`` returns ``(features, None)``.
    """

    def __init__(self, channels, coarser_channels=None, image_channels=3, skip=None):
        super().__init__()
        self.up = None if coarser_channels is None else Up(coarser_channels, channels)
        merged_channels = channels if coarser_channels is None else 2 * channels
        self.merge = conv3x3(merged_channels, channels)

    def forward(self, skip, blurred, coarser=None):
        merged = skip if self.up is None else torch.cat([skip, self.up(coarser)], dim=1)
        return F.relu(self.merge(merged)), None


class SAM(nn.Module):
    """Supervised attention module of MPRNet, between the two stages (1x1 kernels)::

        img = conv(x -> image) + B
        out = conv(x) * sigmoid(conv(img -> C)) + x

    ``forward(x, blurred)`` returns ``(features, image)``; the image is supervised.
    """

    def __init__(self, channels, image_channels=3, kernel_size=1):
        super().__init__()
        padding = kernel_size // 2
        self.features = nn.Conv2d(channels, channels, kernel_size, padding=padding, bias=False)
        self.to_image = nn.Conv2d(channels, image_channels, kernel_size, padding=padding, bias=False)
        self.image_attention = nn.Conv2d(image_channels, channels, kernel_size, padding=padding, bias=False)

    def forward(self, x, blurred):
        image = self.to_image(x) + blurred
        attention = torch.sigmoid(self.image_attention(image))
        return self.features(x) * attention + x, image


class Stage1Projections(nn.Module):
    """Optional 1x1 projections of the stage-1 encoder and decoder features at one level
    before they join stage 2 (MPRNet's cross-stage feature fusion has them)."""

    def __init__(self, channels, enabled=True):
        super().__init__()
        self.encoder = conv1x1(channels, channels) if enabled else nn.Identity()
        self.decoder = conv1x1(channels, channels) if enabled else nn.Identity()

    def forward(self, stage1_encoder, stage1_decoder):
        return self.encoder(stage1_encoder), self.decoder(stage1_decoder)


@ARCH_REGISTRY.register()
class CSAM(nn.Module):
    """Cross-stage selective aggregation module (paper Fig. 3, Eqs. 5-7): selective-kernel
    fusion (MIRNet's SKFF) of stage-1 encoder, stage-1 decoder and stage-2 encoder
    features at one level::

        U = [conv1x1(E1), conv1x1(D1), E2]           (projections optional)
        z = prelu(conv1x1_{C -> C/r}(GAP(sum U)))    aggregate
        a = softmax over the 3 branches of conv1x1_i(z -> C)
        out = sum_i a_i * U_i                        select

    Args:
        channels (int): width C of all three inputs and of the output.
        reduction (int): r, the squeeze ratio of the descriptor (default 8);
            the descriptor has ``channels // reduction`` (at least 1) channels.
        project_stage1 (bool): 1x1-project the two stage-1 inputs first.

    ``forward(stage1_encoder, stage1_decoder, stage2)`` returns the fused features.
    """

    num_branches = 3

    def __init__(self, channels, reduction=8, project_stage1=True):
        super().__init__()
        squeezed = max(channels // reduction, 1)
        self.stage1 = Stage1Projections(channels, enabled=project_stage1)
        self.squeeze = nn.Sequential(conv1x1(channels, squeezed), nn.PReLU())
        self.branch_logits = nn.ModuleList(conv1x1(squeezed, channels) for _ in range(self.num_branches))

    def forward(self, stage1_encoder, stage1_decoder, stage2):
        encoder, decoder = self.stage1(stage1_encoder, stage1_decoder)
        # GAP of the sum is the sum of the GAPs: no full-size temporary for sum U.
        pooled = [u.mean(dim=(2, 3), keepdim=True) for u in (encoder, decoder, stage2)]
        descriptor = self.squeeze(pooled[0] + pooled[1] + pooled[2])
        # (N, 3, C, 1, 1): only the per-channel weights are stacked, never the features.
        logits = torch.stack([branch(descriptor) for branch in self.branch_logits], dim=1)
        w_encoder, w_decoder, w_stage2 = torch.softmax(logits, dim=1).unbind(dim=1)
        return w_encoder * encoder + w_decoder * decoder + w_stage2 * stage2


class CrossStageSum(nn.Module):
    """MPRNet's cross-stage fusion in place of CSAM: ``E2 + conv1x1(E1) + conv1x1(D1)``
    (projections optional). Same call as ``CSAM``."""

    def __init__(self, channels, project_stage1=True):
        super().__init__()
        self.stage1 = Stage1Projections(channels, enabled=project_stage1)

    def forward(self, stage1_encoder, stage1_decoder, stage2):
        encoder, decoder = self.stage1(stage1_encoder, stage1_decoder)
        return stage2 + encoder + decoder
