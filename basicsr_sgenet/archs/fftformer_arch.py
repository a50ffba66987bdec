"""FFTformer: the frequency-domain transformer of Kong et al., "Efficient Frequency
Domain-based Transformer for High-Quality Image Deblurring" (CVPR 2023), as published in
kkkls/FFTformer.

A 3-level U-Net whose attention and feed-forward work on 8x8 patches in the Fourier
domain (so its cost grows linearly with the number of pixels); the encoder has no
attention, only the decoder does::

    x ──pad──> conv3 -> [DFFN blocks, Down]x2 -> DFFN blocks
           -> FSAS blocks -> [Up, Fuse(up, skip), FSAS blocks]x2 -> refinement -> conv3 -> + x

- FSAS (frequency self-attention solver): queries and keys combined inside each 8x8 patch
  by an element-wise product of their 2-D FFTs (the paper's "correlation"; with no complex
  conjugate it is a circular convolution, as in the official code), layer-normed, gates
  the values.
- DFFN (discriminative frequency FFN): a GDFN (Restormer's gated feed-forward) whose
  expanded features are filtered per 8x8 patch by a learned spectrum per channel.
- Fuse: the upsampled decoder and the encoder skip, concatenated, mixed by a 1x1 conv, one
  transformer block (DFFN only) and a 1x1 conv, then the two halves are added.

Parameter names and shapes are the official ones, so the authors' GoPro checkpoint
(``pretrain_model/fftformer_GoPro.pth``, a bare state dict) loads with ``strict=True``.
That includes ``reduce_chan_level2``, a 1x1 conv the official model builds but never uses
(it gets no gradient: distributed training needs ``find_unused_parameters``). Plain
reshapes replace the official einops calls.

The FFTs (``torch.fft.rfft2``/``irfft2``) run in fp32 even under autocast, as in the
official code. PyTorch's TorchScript ONNX exporter has no ``aten::fft_rfft2``: FFTformer
cannot be exported to ONNX (``basicsr_sgenet.export`` says so in one line).
"""
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple
from basicsr_sgenet.archs.restormer_arch import LayerNorm, OverlapPatchEmbed

PATCH_SIZE = 8  # the FFTs run on 8x8 patches (JPEG's block size), at every level
NUM_LEVELS = 3
FUSE_FFN_EXPANSION = 2.66  # the official Fuse blocks keep TransformerBlock's default, not the model's factor


def to_patches(x, patch=PATCH_SIZE):
    """(N, C, H, W) -> (N, C, H/patch, W/patch, patch, patch); H, W multiples of ``patch``."""
    batch, channels, height, width = x.shape
    x = x.reshape(batch, channels, height // patch, patch, width // patch, patch)
    return x.permute(0, 1, 2, 4, 3, 5)


def from_patches(x):
    """The inverse of ``to_patches``."""
    batch, channels, rows, cols, patch, _ = x.shape
    return x.permute(0, 1, 2, 4, 3, 5).reshape(batch, channels, rows * patch, cols * patch)


def patch_spectrum(x):
    """The 2-D real FFT of every 8x8 patch of ``x``, in fp32 (``(..., 8, 5)`` complex)."""
    return torch.fft.rfft2(to_patches(x).float())


def from_patch_spectrum(spectrum):
    """Back from ``patch_spectrum``'s layout to an (N, C, H, W) fp32 image."""
    return from_patches(torch.fft.irfft2(spectrum, s=(PATCH_SIZE, PATCH_SIZE)))


class DFFN(nn.Module):
    """Discriminative frequency-domain feed-forward: 1x1 expand, a learned filter on every
    8x8 patch's spectrum (``fft``, one per channel, all ones at init), 3x3 depthwise, then
    one half, GELU-activated, gates the other; 1x1 back."""

    def __init__(self, channels, expansion_factor, bias):
        super().__init__()
        hidden = int(channels * expansion_factor)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        # (channels, 1, 1, 8, 5) broadcasts over the batch and the patch grid of patch_spectrum.
        self.fft = nn.Parameter(torch.ones(2 * hidden, 1, 1, PATCH_SIZE, PATCH_SIZE // 2 + 1))
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x):
        x = from_patch_spectrum(patch_spectrum(self.project_in(x)) * self.fft)
        gate, value = self.dwconv(x).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class FSAS(nn.Module):
    """Frequency-domain self-attention solver: queries, keys and values (2 x channels
    each) from a 1x1 then a 3x3 depthwise conv; within every 8x8 patch, queries and keys
    are circularly convolved (the inverse FFT of their spectra's product). The result is
    layer-normed and multiplies the values; 1x1 back."""

    def __init__(self, channels, bias):
        super().__init__()
        self.to_hidden = nn.Conv2d(channels, 6 * channels, 1, bias=bias)
        self.to_hidden_dw = nn.Conv2d(6 * channels, 6 * channels, 3, padding=1, groups=6 * channels, bias=bias)
        self.project_out = nn.Conv2d(2 * channels, channels, 1, bias=bias)
        self.norm = LayerNorm(2 * channels, 'WithBias')

    def forward(self, x):
        query, key, value = self.to_hidden_dw(self.to_hidden(x)).chunk(3, dim=1)
        correlation = from_patch_spectrum(patch_spectrum(query) * patch_spectrum(key))
        return self.project_out(value * self.norm(correlation))


class TransformerBlock(nn.Module):
    """Pre-norm residual FSAS (decoder blocks only, ``att=True``), then pre-norm residual
    DFFN. The norms are always the 'WithBias' layer norm, as in the official model."""

    def __init__(self, channels, ffn_expansion_factor, bias, att=False):
        super().__init__()
        self.att = att
        if att:
            self.norm1 = LayerNorm(channels, 'WithBias')
            self.attn = FSAS(channels, bias)
        self.norm2 = LayerNorm(channels, 'WithBias')
        self.ffn = DFFN(channels, ffn_expansion_factor, bias)

    def forward(self, x):
        if self.att:
            x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Fuse(nn.Module):
    """Merge the upsampled decoder features with the encoder skip (both ``channels``):
    concat, 1x1 conv, a transformer block without attention, 1x1 conv, add the halves."""

    def __init__(self, channels):
        super().__init__()
        self.n_feat = channels
        self.att_channel = TransformerBlock(2 * channels, FUSE_FFN_EXPANSION, bias=False)
        self.conv = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.conv2 = nn.Conv2d(2 * channels, 2 * channels, 1)

    def forward(self, decoder, skip):
        x = self.conv2(self.att_channel(self.conv(torch.cat([decoder, skip], dim=1))))
        first, second = x.chunk(2, dim=1)
        return first + second


class Downsample(nn.Module):
    """Half the size (bilinear, i.e. 2x2 means on even sizes), twice the channels (3x3 conv)."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Upsample(scale_factor=0.5, mode='bilinear', align_corners=False),
                                  nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """Twice the size (bilinear), half the channels (3x3 conv)."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False),
                                  nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False))

    def forward(self, x):
        return self.body(x)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_arguments(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, ffn_expansion_factor,
                     bias):
    """Raise ValueError, naming the argument, for anything FFTformer cannot be built from."""
    for name, value in (('inp_channels', inp_channels), ('out_channels', out_channels)):
        if not _is_int(value) or value < 1:
            raise ValueError(f'FFTformer: {name} must be a positive int, got {value!r}')
    if out_channels != inp_channels:
        raise ValueError(f'FFTformer: out_channels ({out_channels}) must equal inp_channels ({inp_channels}): the '
                         'output is a residual over the input')
    if not _is_int(dim) or dim < 1:
        raise ValueError(f'FFTformer: dim must be a positive int, got {dim!r}')
    if not (isinstance(num_blocks, Sequence) and not isinstance(num_blocks, str) and len(num_blocks) == NUM_LEVELS
            and all(_is_int(v) and v >= 1 for v in num_blocks)):
        # The official signature's default [6, 6, 12, 8] has a 4th entry no level uses; its
        # GoPro option file gives 3. Refused rather than ignored.
        raise ValueError(f'FFTformer: num_blocks must be a list of {NUM_LEVELS} positive ints (transformer blocks '
                         f'per level, finest first), got {num_blocks!r}')
    if not _is_int(num_refinement_blocks) or num_refinement_blocks < 0:
        raise ValueError(f'FFTformer: num_refinement_blocks must be an int >= 0, got {num_refinement_blocks!r}')
    if (not isinstance(ffn_expansion_factor, numbers.Real) or isinstance(ffn_expansion_factor, bool)
            or int(dim * ffn_expansion_factor) < 1):
        raise ValueError(f'FFTformer: ffn_expansion_factor must be a number with int(dim * factor) >= 1, '
                         f'got {ffn_expansion_factor!r}')
    if not isinstance(bias, bool):
        raise ValueError(f'FFTformer: bias must be true or false, got {bias!r}')


@ARCH_REGISTRY.register()
class FFTformer(nn.Module):
    """FFTformer. The defaults are the official GoPro model of ``options/train/GoPro.yml``
    (16.6M parameters).

    Args:
        inp_channels (int): input image channels. Default 3.
        out_channels (int): output image channels; must equal ``inp_channels`` (the
            network predicts a residual). Default 3.
        dim (int): channels at full resolution; level k has ``dim * 2**(k-1)``.
            Default 48.
        num_blocks (list of 3 int): transformer blocks per level, finest first; the
            encoder level (DFFN only) and the decoder level (FSAS + DFFN) share the
            count. Default [6, 6, 12].
        num_refinement_blocks (int): FSAS + DFFN blocks after the decoder. Default 4.
        ffn_expansion_factor (float): DFFN hidden width over its input width (the Fuse
            blocks keep 2.66, as in the official code). Default 3.
        bias (bool): biases in the convolutions of the blocks. Default False.

    Input: ``(N, inp_channels, H, W)``, any H and W >= 1, padded at the bottom and right
    to a multiple of 32 (8x8 patches at 1/4 resolution; reflection, as the official test
    script pads, or replication where the image is too small) and cropped back.

    Output: the restored image, ``(N, out_channels, H, W)``, in eval and training mode.
    """

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(6, 6, 12), num_refinement_blocks=4,
                 ffn_expansion_factor=3, bias=False, **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f'FFTformer: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are '
                             'inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, '
                             'ffn_expansion_factor, bias')
        _check_arguments(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, ffn_expansion_factor,
                         bias)
        self.inp_channels = inp_channels
        self.size_multiple = PATCH_SIZE * 2**(NUM_LEVELS - 1)
        self.output_scale_factors = {'final': 1}

        def blocks(count, channels, att):
            return nn.Sequential(*(TransformerBlock(channels, ffn_expansion_factor, bias, att) for _ in range(count)))

        level_channels = [dim * 2**level for level in range(NUM_LEVELS)]
        # Attributes in the official order, so state_dict() lists keys as the checkpoint does.
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = blocks(num_blocks[0], level_channels[0], att=False)
        self.down1_2 = Downsample(level_channels[0])
        self.encoder_level2 = blocks(num_blocks[1], level_channels[1], att=False)
        self.down2_3 = Downsample(level_channels[1])
        self.encoder_level3 = blocks(num_blocks[2], level_channels[2], att=False)
        self.decoder_level3 = blocks(num_blocks[2], level_channels[2], att=True)
        self.up3_2 = Upsample(level_channels[2])
        self.reduce_chan_level2 = nn.Conv2d(level_channels[2], level_channels[1], 1, bias=bias)  # unused, official
        self.decoder_level2 = blocks(num_blocks[1], level_channels[1], att=True)
        self.up2_1 = Upsample(level_channels[1])
        self.decoder_level1 = blocks(num_blocks[0], level_channels[0], att=True)
        self.refinement = blocks(num_refinement_blocks, level_channels[0], att=True)
        self.fuse2 = Fuse(level_channels[1])
        self.fuse1 = Fuse(level_channels[0])
        self.output = nn.Conv2d(level_channels[0], out_channels, 3, padding=1, bias=bias)

    def forward(self, image):
        check_input('FFTformer', image, self.inp_channels)
        height, width = image.shape[-2:]
        padded = pad_to_multiple(image, self.size_multiple)

        encoder1 = self.encoder_level1(self.patch_embed(padded))
        encoder2 = self.encoder_level2(self.down1_2(encoder1))
        decoder3 = self.decoder_level3(self.encoder_level3(self.down2_3(encoder2)))
        decoder2 = self.decoder_level2(self.fuse2(self.up3_2(decoder3), encoder2))
        decoder1 = self.refinement(self.decoder_level1(self.fuse1(self.up2_1(decoder2), encoder1)))
        return crop_to_scale(self.output(decoder1) + padded, height, width)
