"""SGENet: Spatially Guided Enhancement Network for dynamic-scene deblurring.

Two U-Net stages (paper Fig. 1)::

    B ──pad──> pyramid B_1 (full), B_2 (1/2), B_3 (1/4)       (2x2 average pooling)
    stage 1:  conv3(B) -> encoder [RDM x2, Down]* -> decoder [CEM, RDM x2]* (coarse to fine)
    SAM:      stage-1 decoder features + B -> attended features, stage-1 image
    stage 2:  conv3(cat[conv3(B), SAM features]) -> encoder [RDM x2, CSAM(E1, D1, .), Down]*
              -> decoder [CEM, RDM x2]* -> conv3(. -> 3) + B = final image

The blocks live in ``sgenet_blocks.py``; this module composes them. How the paper was
turned into this design, and each choice it leaves open: docs/architecture.md.
"""
import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple
from basicsr_sgenet.archs.sgenet_blocks import (CEM, CEM_SKIPS, CSAM, DEFAULT_RDM_DILATIONS, RDM, SAM,
                                                CrossStageSum, Down, PlainSkipFusion, conv3x3)

PAPER_CHANNELS = (96, 120, 144)


def output_scale_factors(num_scales=len(PAPER_CHANNELS), use_cem=True):
    """Training-mode output keys of SGENet and the downscale factor of each.

    An output with factor f is compared with ``F.avg_pool2d(gt, f)`` (no pooling for
    f = 1) and has exactly that tensor's size: ``(H // f, W // f)``.
    """
    def cem_outputs(stage):
        return {f'{stage}_cem{k}': 2**(k - 1) for k in range(1, num_scales + 1)} if use_cem else {}

    return {'final': 1, **cem_outputs('stage2'), 'sam': 1, **cem_outputs('stage1')}


# The paper configuration's outputs: {'final': 1, 'stage2_cem1': 1, 'stage2_cem2': 2, ...}.
OUTPUT_SCALE_FACTORS = output_scale_factors()


def average_pyramid(image, num_scales):
    """[B_1, B_2, ...]: the image, then repeated 2x2 average pooling (B_s, the blurred input at scale s)."""
    pyramid = [image]
    for _ in range(num_scales - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2))
    return pyramid


def rdm_group(channels, num_rdm, dilations):
    return nn.Sequential(*(RDM(channels, dilations) for _ in range(num_rdm)))


class Encoder(nn.Module):
    """U-Net encoder: at each level (fine to coarse) ``num_rdm`` RDMs, optionally a
    cross-stage fusion with stage 1's features of that level, then Down to the next.

    ``forward(x, stage1_encoder=None, stage1_decoder=None)`` returns the level outputs,
    finest first.
    """

    def __init__(self, channels, num_rdm, rdm_dilations, cross_stage_fusion=None):
        super().__init__()
        self.levels = nn.ModuleList(rdm_group(c, num_rdm, rdm_dilations) for c in channels)
        self.downs = nn.ModuleList(Down(fine, coarse) for fine, coarse in zip(channels[:-1], channels[1:]))
        self.cross_stage = (None if cross_stage_fusion is None else nn.ModuleList(
            cross_stage_fusion(c) for c in channels))

    def forward(self, x, stage1_encoder=None, stage1_decoder=None):
        outputs = []
        for level, rdms in enumerate(self.levels):
            if level > 0:
                x = self.downs[level - 1](x)
            x = rdms(x)
            if self.cross_stage is not None:
                x = self.cross_stage[level](stage1_encoder[level], stage1_decoder[level], x)
            outputs.append(x)
        return outputs


class Decoder(nn.Module):
    """U-Net decoder: at each level (coarse to fine) a skip fusion (CEM, or the plain
    fusion) of the encoder skip, the coarser decoder output and B_s, then ``num_rdm`` RDMs.

    ``forward(skips, blurred_pyramid)`` returns ``(features, images)``, both finest first;
    ``images`` holds the CEM images I_s, or is empty without CEM.
    """

    def __init__(self, channels, num_rdm, rdm_dilations, use_cem, image_channels, cem_skip='pre_activation'):
        super().__init__()
        fusion = CEM if use_cem else PlainSkipFusion
        coarser = list(channels[1:]) + [None]
        self.fusions = nn.ModuleList(
            fusion(c, coarse, image_channels, cem_skip) for c, coarse in zip(channels, coarser))
        self.levels = nn.ModuleList(rdm_group(c, num_rdm, rdm_dilations) for c in channels)

    def forward(self, skips, blurred_pyramid):
        num_levels = len(self.levels)
        features, images = [None] * num_levels, [None] * num_levels
        coarser = None
        for level in reversed(range(num_levels)):
            fused, images[level] = self.fusions[level](skips[level], blurred_pyramid[level], coarser)
            coarser = features[level] = self.levels[level](fused)
        return features, [image for image in images if image is not None]


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sequence(value):
    return isinstance(value, Sequence) and not isinstance(value, str)


def _check_arguments(in_channels, channels, num_rdm, rdm_dilations, use_cem, use_csam, csam_reduction,
                     csam_project_stage1, cem_skip):
    """Raise ValueError, naming the argument, for anything SGENet cannot be built from."""
    if not _is_int(in_channels) or in_channels < 1:
        raise ValueError(f'SGENet: in_channels must be a positive int, got {in_channels!r}')
    if not _is_sequence(channels) or len(channels) < 2 or not all(_is_int(c) and c > 0 for c in channels):
        raise ValueError(f'SGENet: channels must be a list of at least 2 positive ints (one width per scale, '
                         f'finest first, e.g. [96, 120, 144]), got {channels!r}')
    if not _is_int(num_rdm) or num_rdm < 1:
        raise ValueError(f'SGENet: num_rdm must be an int >= 1, got {num_rdm!r}')
    if (not _is_sequence(rdm_dilations) or len(rdm_dilations) < 1 or not all(
            _is_sequence(path) and len(path) >= 1 and all(_is_int(d) and d > 0 for d in path)
            for path in rdm_dilations)):
        raise ValueError(f'SGENet: rdm_dilations must be a non-empty list of non-empty lists of positive ints '
                         f'(one list of dilations per recursive path, e.g. [[2, 1], [3, 1]]), got {rdm_dilations!r}')
    for name, value in (('use_cem', use_cem), ('use_csam', use_csam), ('csam_project_stage1', csam_project_stage1)):
        if not isinstance(value, bool):
            raise ValueError(f'SGENet: {name} must be true or false, got {value!r}')
    if cem_skip not in CEM_SKIPS:
        raise ValueError(f'SGENet: cem_skip must be one of {", ".join(CEM_SKIPS)}, got {cem_skip!r}')
    if not _is_int(csam_reduction) or not 1 <= csam_reduction <= min(channels):
        raise ValueError(f'SGENet: csam_reduction must be an int between 1 and the smallest channel count '
                         f'({min(channels)}), got {csam_reduction!r}')


@ARCH_REGISTRY.register()
class SGENet(nn.Module):
    """SGENet (paper Fig. 1): two U-Net stages joined by SAM and CSAM, with CEM on the
    decoder skips. The defaults are the paper's configuration (19.25M parameters).

    Args:
        in_channels (int): image channels, in and out (the network predicts a residual
            over its input). Default 3.
        channels (list of int): width per scale, finest first; its length is the number
            of scales. Paper: 96, 120, 144 (3 scales).
        num_rdm (int): RDMs per level, in the encoder and again in the decoder, in both
            stages. Paper: "2 RDMs at each scale".
        rdm_dilations (list of list of int): the RDM's recursive paths, one list of
            3x3-conv dilations per path. Not given by the paper; default ((2, 1), (3, 1)),
            DAVANet-style.
        use_cem (bool): CEM on the decoder skips (default). False: the paper's "w/o CEM"
            ablation, a plain ``relu(conv3(cat[F_s, Up(F_prev)]))`` fusion with no
            per-scale images (the ``*_cem*`` outputs are then absent).
        use_csam (bool): CSAM to bring stage-1 features into stage 2 (default). False:
            MPRNet's plain summation ``E2 + conv1x1(E1) + conv1x1(D1)``.
        csam_reduction (int): squeeze ratio of CSAM's channel descriptor. Default 8, as in
            MIRNet's selective-kernel fusion.
        csam_project_stage1 (bool): 1x1-project the stage-1 encoder and decoder features
            before fusing them into stage 2 (CSAM or plain sum). Default True.
        cem_skip (str): CEM's additive skip, 'pre_activation' (default: the merge before
            its ReLU, which cannot die) or 'post_activation' (after it, as the reference
            design reads; can silently stop restoring, see docs/architecture.md).

    Input: ``(N, in_channels, H, W)``, any H and W >= 1. The input is padded at the
    bottom and right to a multiple of ``2 ** (num_scales - 1)`` (reflection, or
    replication where the image is too small to reflect) and every output is cropped
    back, so no size restriction applies. B_s, the blurred input at scale s, is 2x2
    average pooling of the padded input, applied s - 1 times.

    Output:
        eval mode: the final image, ``(N, in_channels, H, W)``.
        training mode: a dict of images for deep supervision, keys and downscale
            factors in ``self.output_scale_factors`` (see ``output_scale_factors``):
            'final', 'stage2_cem1', ..., 'sam', 'stage1_cem1', .... The output at scale
            k (factor f = 2 ** (k - 1); scale 1 is full resolution) has size
            ``(H // f, W // f)``, that of ``F.avg_pool2d(gt, f)`` on the unpadded
            ground truth. Without CEM only 'final' and 'sam' are present.
    """

    def __init__(self, in_channels=3, channels=PAPER_CHANNELS, num_rdm=2, rdm_dilations=DEFAULT_RDM_DILATIONS,
                 use_cem=True, use_csam=True, csam_reduction=8, csam_project_stage1=True, cem_skip='pre_activation',
                 **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f'SGENet: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are '
                             'in_channels, channels, num_rdm, rdm_dilations, use_cem, use_csam, csam_reduction, '
                             'csam_project_stage1, cem_skip')
        _check_arguments(in_channels, channels, num_rdm, rdm_dilations, use_cem, use_csam, csam_reduction,
                         csam_project_stage1, cem_skip)
        channels = tuple(channels)
        rdm_dilations = tuple(tuple(path) for path in rdm_dilations)
        width = channels[0]
        self.in_channels = in_channels
        self.num_scales = len(channels)
        self.size_multiple = 2**(self.num_scales - 1)
        self.output_scale_factors = output_scale_factors(self.num_scales, use_cem)

        if use_csam:
            cross_stage_fusion = functools.partial(CSAM, reduction=csam_reduction, project_stage1=csam_project_stage1)
        else:
            cross_stage_fusion = functools.partial(CrossStageSum, project_stage1=csam_project_stage1)

        self.stage1_shallow = conv3x3(in_channels, width)
        self.stage1_encoder = Encoder(channels, num_rdm, rdm_dilations)
        self.stage1_decoder = Decoder(channels, num_rdm, rdm_dilations, use_cem, in_channels, cem_skip)
        self.sam = SAM(width, in_channels)
        self.stage2_shallow = conv3x3(in_channels, width)
        self.stage2_merge = conv3x3(2 * width, width)
        self.stage2_encoder = Encoder(channels, num_rdm, rdm_dilations, cross_stage_fusion)
        self.stage2_decoder = Decoder(channels, num_rdm, rdm_dilations, use_cem, in_channels, cem_skip)
        self.output_conv = conv3x3(width, in_channels)

    @staticmethod
    def output_scales(num_scales=len(PAPER_CHANNELS), use_cem=True):
        """Same as the module-level ``output_scale_factors``."""
        return output_scale_factors(num_scales, use_cem)

    def forward(self, image):
        check_input('SGENet', image, self.in_channels)
        height, width = image.shape[-2:]
        blurred = pad_to_multiple(image, self.size_multiple)
        blurred_pyramid = average_pyramid(blurred, self.num_scales)

        stage1_encoder = self.stage1_encoder(self.stage1_shallow(blurred))
        stage1_decoder, stage1_images = self.stage1_decoder(stage1_encoder, blurred_pyramid)

        sam_features, sam_image = self.sam(stage1_decoder[0], blurred)

        stage2_input = self.stage2_merge(torch.cat([self.stage2_shallow(blurred), sam_features], dim=1))
        stage2_encoder = self.stage2_encoder(stage2_input, stage1_encoder, stage1_decoder)
        stage2_decoder, stage2_images = self.stage2_decoder(stage2_encoder, blurred_pyramid)

        final = self.output_conv(stage2_decoder[0]) + blurred
        if not self.training:
            return final[..., :height, :width]

        def crop(output, factor):
            return crop_to_scale(output, height, width, factor)

        outputs = {'final': crop(final, 1)}
        outputs.update({f'stage2_cem{k}': crop(img, 2**(k - 1)) for k, img in enumerate(stage2_images, start=1)})
        outputs['sam'] = crop(sam_image, 1)
        outputs.update({f'stage1_cem{k}': crop(img, 2**(k - 1)) for k, img in enumerate(stage1_images, start=1)})
        return outputs
