"""MLWNet: the multi-scale network with a learnable discrete wavelet transform of Gao et
al., "Efficient Multi-scale Network with Learnable Discrete Wavelet Transform for Blind
Motion Deblurring" (CVPR 2024), as published in thqiu0419/MLWNet.

An encoder of NAFBlocks, a fusion stage and a decoder of wavelet blocks, one image head
per level (the coarse heads are deeply supervised in training only)::

    x ──pad──> conv3 -> [NAFBlock x n_i, Down] x3 -> NAFBlock x n_4             (encoder)
           -> 1/4 and 1/2 skips refined: Up + skip -> WaveletBlock x f_i          (fusion)
           -> WaveletBlock x m_4 -> head (1/8) -> [Up, + fused skip,
              WaveletBlock x m_i -> head (1/4, 1/2, full)]                        (decoder)
           -> full-resolution head + x

A wavelet block replaces NAFBlock's depthwise convolution by a learnable one-level 2-D
wavelet transform (LWN): decompose into four half-size sub-bands, mix them with 1x1 and
7x7 depthwise convolutions, reconstruct. The four 1-D filters start as Haar and are
trained; the authors keep them a near-perfect-reconstruction filter bank with a
regulariser, returned here in the training output (see ``MLWNet``).

Parameter names and shapes are the official ones, so the authors' GoPro checkpoint loads
with ``strict=True``. Their ``MLWNet_Local`` (local channel-attention statistics at test
time, NAFNet's TLC) is ``tlc_train_size=256`` here. Plain reshapes replace einops and
the Haar filters are written out, so neither einops nor PyWavelets is needed.
"""
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple
from basicsr_sgenet.archs.nafnet_arch import ChannelMean, LayerNorm2d, NAFBlock, simple_gate, tlc_windows

NUM_LEVELS = 4  # full, 1/2, 1/4, 1/8
# Three stride-2 downsamplings, and the wavelet blocks at 1/8 halve once more.
SIZE_MULTIPLE = 2**NUM_LEVELS
OUTPUT_SCALE_FACTORS = {'final': 1, 'scale2': 2, 'scale3': 4, 'scale4': 8}
# Training-output key of the filter-bank regulariser (a scalar, not an image).
WAVELET_KEY = 'wavelet'
# The authors' paper configuration (MLWNet_arch.py builds it whatever the options say).
ENCODER_BLOCKS, FUSION_BLOCKS, DECODER_BLOCKS = (1, 2, 4, 24), (2, 2), (2, 2, 2, 2)

# Haar filters as the authors store them (pywt's filter bank, flipped, rec filters flipped back).
_R = 1 / math.sqrt(2)
HAAR = {'dec_lo': (_R, _R), 'dec_hi': (_R, -_R), 'rec_lo': (_R, _R), 'rec_hi': (_R, -_R)}


def filters_2d(lo, hi):
    """The four separable 2x2 filters (LL, LH, HL, HH) as outer products of two (1, 2) filters."""
    lo, hi = lo.reshape(-1), hi.reshape(-1)
    return torch.stack([torch.outer(lo, lo), torch.outer(hi, lo), torch.outer(lo, hi), torch.outer(hi, hi)])


def grouped_kernel(lo, hi, channels):
    """(4 * channels, 1, 2, 2): the four filters once per channel, for a grouped convolution."""
    return filters_2d(lo, hi).repeat(channels, 1, 1).unsqueeze(1)


class WaveletDecomposition(nn.Module):
    """One level of the 2-D DWT: stride-2 grouped convolution with the four analysis filters.

    Holds the same Parameters as its ``LearnableWavelet`` (the official ``DWT`` registers
    them again, so checkpoints carry them twice). Output: (N, 4C, H/2, W/2), the four
    sub-bands of each channel next to each other. H and W are even inside MLWNet (the
    input is padded to a multiple of 16), so the official odd-size padding never applies.
    """

    def __init__(self, dec_lo, dec_hi, channels):
        super().__init__()
        self.dec_lo, self.dec_hi = dec_lo, dec_hi
        self.channels = channels

    def forward(self, x):
        return F.conv2d(x, grouped_kernel(self.dec_lo, self.dec_hi, self.channels), stride=2, groups=self.channels)


class WaveletReconstruction(nn.Module):
    """The inverse: stride-2 grouped transposed convolution with the synthesis filters,
    from (N, 4C, H/2, W/2) laid out as ``WaveletDecomposition`` returns it."""

    def __init__(self, rec_lo, rec_hi, channels):
        super().__init__()
        self.rec_lo, self.rec_hi = rec_lo, rec_hi
        self.channels = channels

    def forward(self, x):
        return F.conv_transpose2d(x, grouped_kernel(self.rec_lo, self.rec_hi, self.channels), stride=2,
                                  groups=self.channels)


def sub_bands_first(x, groups):
    """(N, C*g, H, W) with channel c's g entries together -> each entry's C channels together."""
    n, _, h, w = x.shape
    return x.reshape(n, -1, groups, h, w).transpose(1, 2).reshape(n, -1, h, w)


def channels_first(x, groups):
    """The inverse of ``sub_bands_first``."""
    n, _, h, w = x.shape
    return x.reshape(n, groups, -1, h, w).transpose(1, 2).reshape(n, -1, h, w)


class LearnableWavelet(nn.Module):
    """The official LWN: DWT -> 1x1 conv (4C -> 6C) -> 7x7 depthwise -> GELU -> 1x1 conv
    (6C -> 4C) -> inverse DWT, with the analysis and synthesis filters learned."""

    def __init__(self, channels):
        super().__init__()
        for name, taps in HAAR.items():
            setattr(self, name, nn.Parameter(torch.tensor([taps])))
        self.wavedec = WaveletDecomposition(self.dec_lo, self.dec_hi, channels)
        self.waverec = WaveletReconstruction(self.rec_lo, self.rec_hi, channels)
        self.conv1 = nn.Conv2d(4 * channels, 6 * channels, 1)
        self.conv2 = nn.Conv2d(6 * channels, 6 * channels, 7, padding=3, groups=6 * channels)
        self.act = nn.GELU()
        self.conv3 = nn.Conv2d(6 * channels, 4 * channels, 1)

    def forward(self, x):
        bands = sub_bands_first(self.wavedec(x), 4)  # [LL | LH | HL | HH], C channels each
        bands = self.conv3(self.act(self.conv2(self.conv1(bands))))
        return self.waverec(channels_first(bands, 4))

    def filter_bank_loss(self):
        """Squared distance of the filters from a perfect-reconstruction, alias-free bank
        (Strang & Nguyen): dec * rec summed over both bands must be 2 at lag 0 and 0 elsewhere,
        and with the analysis filters modulated by (-1)^n it must vanish. Zero for Haar."""
        taps = self.dec_lo.shape[-1]
        modulation = torch.tensor([(-1.0)**n for n in reversed(range(taps))], dtype=self.dec_lo.dtype,
                                  device=self.dec_lo.device)

        def product(dec, rec, sign=1):  # the polynomial product as a full 1-D convolution
            return F.conv1d((dec.flip(-1) * sign).unsqueeze(0), rec.flip(-1).unsqueeze(0), padding=taps - 1)

        reconstruction = product(self.dec_lo, self.rec_lo) + product(self.dec_hi, self.rec_hi)
        target = torch.zeros_like(reconstruction)
        target[..., reconstruction.shape[-1] // 2] = 2
        aliasing = product(self.dec_lo, self.rec_lo, modulation) + product(self.dec_hi, self.rec_hi, modulation)
        return ((reconstruction - target)**2).sum() + (aliasing**2).sum()


class WaveletBlock(nn.Module):
    """NAFBlock with the learnable wavelet in place of conv1 + depthwise conv + gate:

        y   = x + beta  * conv1x1(SCA(LWN(norm1(x))))
        out = y + gamma * conv1x1(gate(conv1x1(norm2(y))))
    """

    def __init__(self, channels, tlc_window=None):
        super().__init__()
        self.wavelet_block1 = LearnableWavelet(channels)
        self.conv3 = nn.Conv2d(channels, channels, 1)
        self.sca = nn.Sequential(ChannelMean(tlc_window), nn.Conv2d(channels, channels, 1))
        self.conv4 = nn.Conv2d(channels, 2 * channels, 1)
        self.conv5 = nn.Conv2d(channels, channels, 1)
        self.norm1 = LayerNorm2d(channels)
        self.norm2 = LayerNorm2d(channels)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        features = self.wavelet_block1(self.norm1(x))
        y = x + self.conv3(features * self.sca(features)) * self.beta
        return y + self.conv5(simple_gate(self.conv4(self.norm2(y)))) * self.gamma


def blocks(block, num_blocks, channels, tlc_window):
    return nn.Sequential(*(block(channels, tlc_window) for _ in range(num_blocks)))


def upsample(channels):
    """1x1 conv to twice the channels, then pixel shuffle: 2x size, half the channels."""
    return nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2))


class ImageHead(nn.Module):
    """A 3x3 conv from features to an image (the official Deblur_head)."""

    def __init__(self, channels, out_channels):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(channels, out_channels, 3, padding=1))

    def forward(self, x):
        return self.block(x)


class Encoder(nn.Module):
    """conv3, then NAFBlocks at each level with a stride-2 conv (2x channels) between levels."""

    def __init__(self, in_channels, dim, num_blocks, windows):
        super().__init__()
        self.feature_embed = nn.Conv2d(in_channels, dim, 3, padding=1)
        for level in range(NUM_LEVELS):
            channels = dim * 2**level
            if level:
                setattr(self, f'down{level}', nn.Conv2d(channels // 2, channels, 2, stride=2))
            setattr(self, f'b{level + 1}', blocks(NAFBlock, num_blocks[level], channels, windows[level]))

    def forward(self, x):
        features = [self.b1(self.feature_embed(x))]
        for level in range(1, NUM_LEVELS):
            features.append(getattr(self, f'b{level + 1}')(getattr(self, f'down{level}')(features[-1])))
        return features  # finest first


class Fusion(nn.Module):
    """Refines the 1/4 and 1/2 skips top-down: each is its upsampled coarser level plus the
    encoder's, through wavelet blocks."""

    def __init__(self, dim, num_blocks, windows):
        super().__init__()
        self.up43 = upsample(dim * 8)
        self.d3 = blocks(WaveletBlock, num_blocks[1], dim * 4, windows[2])
        self.up32 = upsample(dim * 4)
        self.d2 = blocks(WaveletBlock, num_blocks[0], dim * 2, windows[1])

    def forward(self, x4, x3, x2):
        x3 = self.d3(self.up43(x4) + x3)
        return x3, self.d2(self.up32(x3) + x2)


class Decoder(nn.Module):
    """Wavelet blocks from 1/8 up, adding the fused skips, with an image head per level.
    The full-resolution level also adds the 1/2 fused skip again, scaled by ``alpha``."""

    def __init__(self, dim, out_channels, num_blocks, windows):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1, dim * 2, 1, 1))
        # Official order: heads and upsamplers coarsest first, then the block groups.
        for level in reversed(range(NUM_LEVELS)):
            channels = dim * 2**level
            setattr(self, f'head{level + 1}', ImageHead(channels, out_channels))
            if level:
                setattr(self, f'up{level + 1}{level}', upsample(channels))
        for level in reversed(range(NUM_LEVELS)):
            setattr(self, f'd{level + 1}', blocks(WaveletBlock, num_blocks[level], dim * 2**level, windows[level]))

    def forward(self, x4, x3, x2, x1, all_heads):
        """Images finest first; the coarse three only if ``all_heads`` (None otherwise)."""
        x = self.d4(x4)
        image4 = self.head4(x) if all_heads else None
        x = self.d3(self.up43(x) + x3)
        image3 = self.head3(x) if all_heads else None
        x = self.d2(self.up32(x) + x2)
        image2 = self.head2(x) if all_heads else None
        x = self.d1(self.up21(x + x2 * self.alpha) + x1)
        return self.head1(x), image2, image3, image4


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_arguments(inp_channels, out_channels, dim, encoder_blocks, fusion_blocks, decoder_blocks,
                     tlc_train_size):
    """Raise ValueError, naming the argument, for anything MLWNet cannot be built from."""
    for name, value in (('inp_channels', inp_channels), ('dim', dim)):
        if not _is_int(value) or value < 1:
            raise ValueError(f'MLWNet: {name} must be a positive int, got {value!r}')
    if out_channels != inp_channels:
        raise ValueError(f'MLWNet: out_channels must equal inp_channels ({inp_channels}): the network predicts '
                         f'a residual over its input, got {out_channels!r}')
    for name, value, length in (('encoder_blocks', encoder_blocks, NUM_LEVELS), ('fusion_blocks', fusion_blocks, 2),
                                ('decoder_blocks', decoder_blocks, NUM_LEVELS)):
        if not (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == length and all(
                _is_int(v) and v >= 0 for v in value)):
            raise ValueError(f'MLWNet: {name} must be a list of {length} ints >= 0 (blocks per level, finest '
                             f'first), got {value!r}')
    if tlc_train_size is not None and not (_is_int(tlc_train_size) and tlc_train_size > 0) and not (
            isinstance(tlc_train_size, Sequence) and len(tlc_train_size) == 2 and all(
                _is_int(v) and v > 0 for v in tlc_train_size)):
        raise ValueError(f'MLWNet: tlc_train_size must be null, a positive int or [height, width], '
                         f'got {tlc_train_size!r}')


@ARCH_REGISTRY.register()
class MLWNet(nn.Module):
    """MLWNet. The defaults are the authors' GoPro model (``dim: 64``, 95.1M parameters).

    Args:
        inp_channels (int): image channels. Default 3.
        out_channels (int): must equal ``inp_channels`` (kept for the authors' options).
        dim (int): channels at full resolution; each level down doubles them. Default 64.
        encoder_blocks (list of 4 int): NAFBlocks per encoder level, finest first.
            Default [1, 2, 4, 24].
        fusion_blocks (list of 2 int): wavelet blocks refining the 1/2 and 1/4 skips.
            Default [2, 2].
        decoder_blocks (list of 4 int): wavelet blocks per decoder level, finest first.
            Default [2, 2, 2, 2]. (The three block lists are fixed in the authors' code;
            they are options here for reduced test networks.)
        tlc_train_size (int or [int, int] or None): the authors' ``MLWNet_Local``: the
            channel-attention mean is taken over a window of 1.5 x this training crop
            (scaled to each level) instead of the whole image, exactly as NAFNet's
            ``tlc_train_size``. The authors train and test with 256. Default None
            (global mean, plain ``MLWNet``).

    Input: ``(N, inp_channels, H, W)``, any H and W >= 1, padded at the bottom and right
    to a multiple of 16 (reflection, or replication where the image is too small; the
    authors' test script reflects too) and cropped back.

    Output, eval mode: the restored image ``(N, C, H, W)``. Training mode: a dict with
    the restored image ``final`` and the coarse heads' images ``scale2``, ``scale3``,
    ``scale4`` at 1/2, 1/4, 1/8 (``self.output_scale_factors``; predicted directly, not
    as residuals), plus ``wavelet``: the scalar filter-bank regulariser summed over every
    wavelet block, which ``MultiScalePSNRWaveletLoss`` adds to the image terms and image
    losses skip. (The authors' ``MLWNet.get_wavelet_loss`` stops with an AttributeError
    on their fusion stage; this sums it over all 12 wavelet blocks, fusion included.)
    """

    def __init__(self, inp_channels=3, out_channels=3, dim=64, encoder_blocks=ENCODER_BLOCKS,
                 fusion_blocks=FUSION_BLOCKS, decoder_blocks=DECODER_BLOCKS, tlc_train_size=None, **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f'MLWNet: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are '
                             'inp_channels, out_channels, dim, encoder_blocks, fusion_blocks, decoder_blocks, '
                             'tlc_train_size')
        _check_arguments(inp_channels, out_channels, dim, encoder_blocks, fusion_blocks, decoder_blocks,
                         tlc_train_size)
        if _is_int(tlc_train_size):
            tlc_train_size = (tlc_train_size, tlc_train_size)
        windows = tlc_windows(tlc_train_size, NUM_LEVELS - 1, SIZE_MULTIPLE)
        self.inp_channels = inp_channels
        self.size_multiple = SIZE_MULTIPLE
        self.output_scale_factors = dict(OUTPUT_SCALE_FACTORS)
        self.encoder = Encoder(inp_channels, dim, encoder_blocks, windows)
        self.fusion = Fusion(dim, fusion_blocks, windows)
        self.decoder = Decoder(dim, out_channels, decoder_blocks, windows)

    def wavelet_loss(self):
        """The filter-bank regulariser summed over every wavelet block, in fp32."""
        with torch.autocast(device_type=self.decoder.alpha.device.type, enabled=False):
            terms = [m.filter_bank_loss() for m in self.modules() if isinstance(m, LearnableWavelet)]
            return sum(terms) if terms else self.decoder.alpha.new_zeros(())

    def forward(self, image):
        check_input('MLWNet', image, self.inp_channels)
        height, width = image.shape[-2:]
        padded = pad_to_multiple(image, self.size_multiple)
        x1, x2, x3, x4 = self.encoder(padded)
        x3, x2 = self.fusion(x4, x3, x2)
        images = list(self.decoder(x4, x3, x2, x1, all_heads=self.training))
        images[0] = images[0] + padded
        if not self.training:
            return crop_to_scale(images[0], height, width)
        outputs = {name: crop_to_scale(output, height, width, factor)
                   for (name, factor), output in zip(self.output_scale_factors.items(), images)}
        outputs[WAVELET_KEY] = self.wavelet_loss()
        return outputs
