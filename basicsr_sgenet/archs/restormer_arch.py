"""Restormer: the efficient transformer of Zamir et al., "Restormer: Efficient Transformer
for High-Resolution Image Restoration" (CVPR 2022), as published in swz30/Restormer.

A 4-level U-Net of transformer blocks whose attention runs across channels (so its cost
grows linearly with the number of pixels), then refinement blocks at full resolution::

    x ──pad──> conv3 -> [blocks, Down]x3 -> latent blocks
           -> [Up, concat skip, (1x1 reduce), blocks]x3 -> refinement -> conv3 -> + x

The decoder's finest level keeps the concatenated 2 x dim channels (no 1x1 reduction),
as in the official code. Parameter names and shapes are the official ones, so the
authors' motion-deblurring checkpoint (``motion_deblurring.pth``) loads with
``strict=True``. Plain reshapes replace the official einops calls.
"""
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple

NUM_LEVELS = 4
LAYER_NORM_TYPES = ('WithBias', 'BiasFree')


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of each pixel of an NCHW tensor (eps 1e-5).

    ``with_bias=False`` is the official 'BiasFree' variant: it divides by the standard
    deviation but neither subtracts the mean nor adds a bias.
    """

    def __init__(self, channels, with_bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x):
        # In fp32 whatever the input: under fp16 autocast the squares of activations above
        # ~256 overflow fp16's range, and the variance becomes inf.
        dtype, x = x.dtype, x.float()
        variance = x.var(1, keepdim=True, unbiased=False)
        centred = x - x.mean(1, keepdim=True) if self.bias is not None else x
        out = centred / torch.sqrt(variance + 1e-5) * self.weight.view(1, -1, 1, 1)
        out = out + self.bias.view(1, -1, 1, 1) if self.bias is not None else out
        return out.to(dtype)


class LayerNorm(nn.Module):
    """Holds the norm as ``body``: the official checkpoints name it ``norm1.body.weight``."""

    def __init__(self, channels, layer_norm_type):
        super().__init__()
        self.body = ChannelLayerNorm(channels, with_bias=layer_norm_type == 'WithBias')

    def forward(self, x):
        return self.body(x)


class FeedForward(nn.Module):
    """Gated-Dconv feed-forward network (GDFN): 1x1 expand, 3x3 depthwise, then one half,
    GELU-activated, gates the other; 1x1 back."""

    def __init__(self, channels, expansion_factor, bias):
        super().__init__()
        hidden = int(channels * expansion_factor)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x):
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class Attention(nn.Module):
    """Multi-Dconv head transposed attention (MDTA): queries, keys and values from a 1x1
    then a 3x3 depthwise conv; per head, a (C/heads x C/heads) attention map between
    channels from L2-normalised queries and keys, scaled by a learned temperature."""

    def __init__(self, channels, num_heads, bias):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x):
        batch, channels, height, width = x.shape
        heads = self.num_heads
        query, key, value = (t.reshape(batch, heads, channels // heads, height * width)
                             for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        query, key = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
        attention = ((query @ key.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        out = (attention @ value).reshape(batch, channels, height, width)
        return self.project_out(out)


class TransformerBlock(nn.Module):
    """Pre-norm residual attention (MDTA) then pre-norm residual feed-forward (GDFN)."""

    def __init__(self, channels, num_heads, ffn_expansion_factor, bias, layer_norm_type):
        super().__init__()
        self.norm1 = LayerNorm(channels, layer_norm_type)
        self.attn = Attention(channels, num_heads, bias)
        self.norm2 = LayerNorm(channels, layer_norm_type)
        self.ffn = FeedForward(channels, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 conv from the image to features ("overlapped patch embedding")."""

    def __init__(self, in_channels, channels, bias=False):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, 3, padding=1, bias=bias)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """Half the size, twice the channels: 3x3 conv to C/2, then pixel unshuffle."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """Twice the size, half the channels: 3x3 conv to 2C, then pixel shuffle."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int_list(value, length, minimum):
    return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == length and all(
        _is_int(v) and v >= minimum for v in value))


def _check_arguments(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads, ffn_expansion_factor,
                     bias, LayerNorm_type, dual_pixel_task):
    """Raise ValueError, naming the argument, for anything Restormer cannot be built from."""
    for name, value in (('inp_channels', inp_channels), ('out_channels', out_channels)):
        if not _is_int(value) or value < 1:
            raise ValueError(f'Restormer: {name} must be a positive int, got {value!r}')
    # Downsample's conv to dim // 2 then pixel unshuffle gives 2 x dim channels only for even dim.
    if not _is_int(dim) or dim < 2 or dim % 2:
        raise ValueError(f'Restormer: dim must be a positive even int, got {dim!r}')
    if not _is_int_list(num_blocks, NUM_LEVELS, 1):
        raise ValueError(f'Restormer: num_blocks must be a list of {NUM_LEVELS} positive ints (transformer blocks '
                         f'per level, finest first), got {num_blocks!r}')
    if not _is_int(num_refinement_blocks) or num_refinement_blocks < 0:
        raise ValueError(f'Restormer: num_refinement_blocks must be an int >= 0, got {num_refinement_blocks!r}')
    if not _is_int_list(heads, NUM_LEVELS, 1):
        raise ValueError(f'Restormer: heads must be a list of {NUM_LEVELS} positive ints (attention heads per '
                         f'level, finest first), got {heads!r}')
    for level, num_heads in enumerate(heads):
        if (dim * 2**level) % num_heads:
            raise ValueError(f'Restormer: heads[{level}] = {num_heads} must divide the {dim * 2**level} channels '
                             f'of level {level + 1} (dim = {dim})')
    if (not isinstance(ffn_expansion_factor, numbers.Real) or isinstance(ffn_expansion_factor, bool)
            or int(dim * ffn_expansion_factor) < 1):
        raise ValueError(f'Restormer: ffn_expansion_factor must be a number with int(dim * factor) >= 1, '
                         f'got {ffn_expansion_factor!r}')
    for name, value in (('bias', bias), ('dual_pixel_task', dual_pixel_task)):
        if not isinstance(value, bool):
            raise ValueError(f'Restormer: {name} must be true or false, got {value!r}')
    if LayerNorm_type not in LAYER_NORM_TYPES:
        raise ValueError(f'Restormer: LayerNorm_type must be one of {", ".join(LAYER_NORM_TYPES)}, '
                         f'got {LayerNorm_type!r}')
    if not dual_pixel_task and out_channels != inp_channels:
        raise ValueError(f'Restormer: out_channels ({out_channels}) must equal inp_channels ({inp_channels}): the '
                         'output is a residual over the input (unless dual_pixel_task)')


@ARCH_REGISTRY.register()
class Restormer(nn.Module):
    """Restormer. The defaults are the official motion-deblurring (GoPro) model of
    ``Motion_Deblurring/Options/Deblurring_Restormer.yml`` (26.1M parameters).

    Args:
        inp_channels (int): input image channels. Default 3.
        out_channels (int): output image channels; must equal ``inp_channels`` unless
            ``dual_pixel_task``. Default 3.
        dim (int): channels at full resolution (even); level k has ``dim * 2**(k-1)``,
            and the finest decoder level and refinement ``2 * dim``. Default 48.
        num_blocks (list of 4 int): transformer blocks per level, finest first (the
            encoder and decoder levels share the count; the 4th is the latent).
            Default [4, 6, 6, 8].
        num_refinement_blocks (int): transformer blocks after the decoder. Default 4.
        heads (list of 4 int): attention heads per level; each must divide its
            level's channels. Default [1, 2, 4, 8].
        ffn_expansion_factor (float): GDFN hidden width over its input width.
            Default 2.66.
        bias (bool): biases in the convolutions of the blocks. Default False.
        LayerNorm_type (str): 'WithBias' (default) or 'BiasFree'.
        dual_pixel_task (bool): the dual-pixel defocus variant: a feature skip
            (``skip_conv``) replaces the image residual. Default False.

    Input: ``(N, inp_channels, H, W)``, any H and W >= 1, padded at the bottom and right
    to a multiple of 8 (reflection, as the official test script does, or replication
    where the image is too small) and cropped back.

    Output: the restored image, ``(N, out_channels, H, W)``, in eval and training mode.
    """

    # The deblur CLI tiles larger images by default: above ~4.2 MP a whole-image pass fails
    # on a 32-bit index limit of its kernels, not on memory (inference/tiling.py).
    whole_image_pixel_budget = 4_000_000

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type='WithBias',
                 dual_pixel_task=False, **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f'Restormer: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are '
                             'inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads, '
                             'ffn_expansion_factor, bias, LayerNorm_type, dual_pixel_task')
        _check_arguments(inp_channels, out_channels, dim, num_blocks, num_refinement_blocks, heads,
                         ffn_expansion_factor, bias, LayerNorm_type, dual_pixel_task)
        self.inp_channels = inp_channels
        self.dual_pixel_task = dual_pixel_task
        self.size_multiple = 2**(NUM_LEVELS - 1)
        self.output_scale_factors = {'final': 1}

        def blocks(count, channels, num_heads):
            return nn.Sequential(*(TransformerBlock(channels, num_heads, ffn_expansion_factor, bias, LayerNorm_type)
                                   for _ in range(count)))

        level_channels = [dim * 2**level for level in range(NUM_LEVELS)]
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = blocks(num_blocks[0], level_channels[0], heads[0])
        self.down1_2 = Downsample(level_channels[0])
        self.encoder_level2 = blocks(num_blocks[1], level_channels[1], heads[1])
        self.down2_3 = Downsample(level_channels[1])
        self.encoder_level3 = blocks(num_blocks[2], level_channels[2], heads[2])
        self.down3_4 = Downsample(level_channels[2])
        self.latent = blocks(num_blocks[3], level_channels[3], heads[3])
        self.up4_3 = Upsample(level_channels[3])
        self.reduce_chan_level3 = nn.Conv2d(level_channels[3], level_channels[2], 1, bias=bias)
        self.decoder_level3 = blocks(num_blocks[2], level_channels[2], heads[2])
        self.up3_2 = Upsample(level_channels[2])
        self.reduce_chan_level2 = nn.Conv2d(level_channels[2], level_channels[1], 1, bias=bias)
        self.decoder_level2 = blocks(num_blocks[1], level_channels[1], heads[1])
        self.up2_1 = Upsample(level_channels[1])
        self.decoder_level1 = blocks(num_blocks[0], level_channels[1], heads[0])
        self.refinement = blocks(num_refinement_blocks, level_channels[1], heads[0])
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, level_channels[1], 1, bias=bias)
        self.output = nn.Conv2d(level_channels[1], out_channels, 3, padding=1, bias=bias)

    def forward(self, image):
        check_input('Restormer', image, self.inp_channels)
        height, width = image.shape[-2:]
        padded = pad_to_multiple(image, self.size_multiple)

        embedded = self.patch_embed(padded)
        encoder1 = self.encoder_level1(embedded)
        encoder2 = self.encoder_level2(self.down1_2(encoder1))
        encoder3 = self.encoder_level3(self.down2_3(encoder2))
        latent = self.latent(self.down3_4(encoder3))

        decoder3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(latent), encoder3], 1)))
        decoder2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(decoder3), encoder2], 1)))
        decoder1 = self.refinement(self.decoder_level1(torch.cat([self.up2_1(decoder2), encoder1], 1)))

        if self.dual_pixel_task:
            restored = self.output(decoder1 + self.skip_conv(embedded))
        else:
            restored = self.output(decoder1) + padded
        return crop_to_scale(restored, height, width)
