"""NAFNet: the nonlinear-activation-free baseline of Chen et al., "Simple Baselines for
Image Restoration" (ECCV 2022), as published in megvii-research/NAFNet.

A U-Net of NAFBlocks with additive skips and a global residual::

    x ──pad──> intro conv3 -> [NAFBlock x n_i, Down]* -> NAFBlock x middle
           -> [Up, + skip, NAFBlock x m_i]* -> ending conv3 -> + x

Parameter names and shapes are the official ones, so the authors' GoPro checkpoints
(``NAFNet-GoPro-width64.pth``, ``-width32.pth``) load with ``strict=True``. The official
GoPro test option builds ``NAFNetLocal`` (the same weights with the channel-attention
pooling made local at test time, "TLC"); ``tlc_train_size=256`` reproduces it here.
"""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple

# TLC's averaging window is this many times the training crop (NAFNetLocal's base_size).
TLC_WINDOW_RATIO = 1.5


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel of an NCHW tensor (eps 1e-6).

    Plain tensor ops: autograd gives the same gradient as the official hand-written
    backward, and the module stays exportable and runs on any device.
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        normalized = (x - mean) / (variance + self.eps).sqrt()
        return self.weight.view(1, -1, 1, 1) * normalized + self.bias.view(1, -1, 1, 1)


def simple_gate(x):
    """Split the channels in half and multiply the halves: NAFNet's activation."""
    first, second = x.chunk(2, dim=1)
    return first * second


class ChannelMean(nn.Module):
    """Mean of each channel, the statistic of the simplified channel attention.

    ``window=None``: the global mean (``1 x 1`` output), as in training. A window
    ``(kh, kw)``: TLC's local mean, each pixel averaging the ``kh x kw`` box around it
    (boxes kept inside the image, so border pixels share the nearest full box), so a
    full-size test image sees statistics like those of the training crops.
    """

    def __init__(self, window=None):
        super().__init__()
        self.window = window

    def forward(self, x):
        height, width = x.shape[-2:]
        if self.window is None or (self.window[0] >= height and self.window[1] >= width):
            return F.adaptive_avg_pool2d(x, 1)
        box_h, box_w = min(self.window[0], height), min(self.window[1], width)
        # Box sums from a summed-area table: O(1) per pixel whatever the window size.
        table = F.pad(x.cumsum(-1).cumsum(-2), (1, 0, 1, 0))
        box_sum = (table[..., box_h:, box_w:] + table[..., :-box_h, :-box_w] - table[..., :-box_h, box_w:] -
                   table[..., box_h:, :-box_w])
        mean = box_sum / (box_h * box_w)
        pad_h, pad_w = height - mean.shape[-2], width - mean.shape[-1]
        return F.pad(mean, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode='replicate')

    def extra_repr(self):
        return f'window={self.window}'


class NAFBlock(nn.Module):
    """Two residual halves, each scaled by a learned per-channel factor (zero at init,
    so a fresh block is the identity):

        y   = x + beta  * conv1x1(SCA(gate(dwconv3(conv1x1(norm1(x))))))
        out = y + gamma * conv1x1(gate(conv1x1(norm2(y))))

    SCA (simplified channel attention) multiplies by ``conv1x1(channel mean)``.

    Args:
        channels (int): feature channels, in and out.
        tlc_window (tuple of int or None): TLC window for the channel mean at this
            block's scale; None for the global mean.
    """

    def __init__(self, channels, tlc_window=None):
        super().__init__()
        expanded = 2 * channels  # both halves expand 2x; the gate halves it back
        self.conv1 = nn.Conv2d(channels, expanded, 1)
        self.conv2 = nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded)
        self.conv3 = nn.Conv2d(expanded // 2, channels, 1)
        self.sca = nn.Sequential(ChannelMean(tlc_window), nn.Conv2d(expanded // 2, expanded // 2, 1))
        self.conv4 = nn.Conv2d(channels, expanded, 1)
        self.conv5 = nn.Conv2d(expanded // 2, channels, 1)
        self.norm1 = LayerNorm2d(channels)
        self.norm2 = LayerNorm2d(channels)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        features = simple_gate(self.conv2(self.conv1(self.norm1(x))))
        features = self.conv3(features * self.sca(features))
        y = x + features * self.beta
        features = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + features * self.gamma


def nafblocks(num_blocks, channels, tlc_window):
    return nn.Sequential(*(NAFBlock(channels, tlc_window) for _ in range(num_blocks)))


def tlc_windows(train_size, num_levels, size_multiple):
    """TLC window per U-Net level (finest first), or Nones without TLC.

    The official ``NAFNetLocal`` fixes each pooling window by running a
    ``train_size`` input once: at a level with downscale factor f the window is
    ``(padded train size // f) * base // train size``, base = int(1.5 x train size).
    """
    if train_size is None:
        return [None] * (num_levels + 1)
    windows = []
    for level in range(num_levels + 1):
        window = []
        for size in train_size:
            padded = size + (-size % size_multiple)
            window.append((padded // 2**level) * int(size * TLC_WINDOW_RATIO) // size)
        windows.append(tuple(window))
    return windows


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int_list(value, minimum):
    return (isinstance(value, Sequence) and not isinstance(value, str) and all(
        _is_int(v) and v >= minimum for v in value))


def _check_arguments(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums, tlc_train_size):
    """Raise ValueError, naming the argument, for anything NAFNet cannot be built from."""
    for name, value in (('img_channel', img_channel), ('width', width)):
        if not _is_int(value) or value < 1:
            raise ValueError(f'NAFNet: {name} must be a positive int, got {value!r}')
    if not _is_int(middle_blk_num) or middle_blk_num < 0:
        raise ValueError(f'NAFNet: middle_blk_num must be an int >= 0, got {middle_blk_num!r}')
    for name, value in (('enc_blk_nums', enc_blk_nums), ('dec_blk_nums', dec_blk_nums)):
        if not _is_int_list(value, 0):
            raise ValueError(f'NAFNet: {name} must be a list of ints >= 0 (blocks per level), got {value!r}')
    if len(enc_blk_nums) != len(dec_blk_nums):
        raise ValueError(f'NAFNet: dec_blk_nums must have one entry per level of enc_blk_nums '
                         f'({len(enc_blk_nums)}), got {dec_blk_nums!r}')
    if tlc_train_size is not None and not (_is_int(tlc_train_size) and tlc_train_size > 0) and not (
            _is_int_list(tlc_train_size, 1) and len(tlc_train_size) == 2):
        raise ValueError(f'NAFNet: tlc_train_size must be null, a positive int or [height, width], '
                         f'got {tlc_train_size!r}')


@ARCH_REGISTRY.register()
class NAFNet(nn.Module):
    """NAFNet. The defaults are the official GoPro model NAFNet-width64 (67.9M
    parameters); ``width=32`` gives NAFNet-width32 (17.1M).

    Args:
        img_channel (int): image channels, in and out (the network predicts a residual
            over its input). Default 3.
        width (int): channels at full resolution; each level down doubles them.
            Default 64.
        middle_blk_num (int): NAFBlocks at the coarsest level. Default 1.
        enc_blk_nums (list of int): NAFBlocks per encoder level, finest first; its
            length is the number of downsamplings. Default [1, 1, 1, 28].
        dec_blk_nums (list of int): NAFBlocks per decoder level, coarsest first, one
            entry per encoder level. Default [1, 1, 1, 1].
        tlc_train_size (int or [int, int] or None): turn on the test-time local
            converter (TLC, Chu et al. 2021) of the official ``NAFNetLocal``: the
            channel-attention mean is taken over a window of 1.5 x this training crop
            size (scaled to each level) instead of the whole image. It changes no
            weight, and for inputs up to about 1.5 x the crop it computes exactly
            the global mean. The official GoPro test (and validation during training)
            uses it with 256. Default None (global mean, plain ``NAFNet``).

    Input: ``(N, img_channel, H, W)``, any H and W >= 1, padded at the bottom and right
    to a multiple of ``2 ** len(enc_blk_nums)`` (reflection, or replication where the
    image is too small; the official code pads with zeros) and cropped back.

    Output: the restored image, ``(N, img_channel, H, W)``, in eval and training mode.
    """

    def __init__(self, img_channel=3, width=64, middle_blk_num=1, enc_blk_nums=(1, 1, 1, 28),
                 dec_blk_nums=(1, 1, 1, 1), tlc_train_size=None, **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f'NAFNet: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are '
                             'img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums, tlc_train_size')
        _check_arguments(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums, tlc_train_size)
        if _is_int(tlc_train_size):
            tlc_train_size = (tlc_train_size, tlc_train_size)
        num_levels = len(enc_blk_nums)
        self.img_channel = img_channel
        self.size_multiple = 2**num_levels
        self.output_scale_factors = {'final': 1}
        windows = tlc_windows(tlc_train_size, num_levels, self.size_multiple)

        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        # Containers in the official order, so state_dict() lists keys as the checkpoints do.
        self.encoders, self.decoders = nn.ModuleList(), nn.ModuleList()
        self.middle_blks, self.ups, self.downs = nn.Sequential(), nn.ModuleList(), nn.ModuleList()
        channels = width
        for level, num_blocks in enumerate(enc_blk_nums):
            self.encoders.append(nafblocks(num_blocks, channels, windows[level]))
            self.downs.append(nn.Conv2d(channels, 2 * channels, 2, stride=2))
            channels *= 2
        self.middle_blks = nafblocks(middle_blk_num, channels, windows[num_levels])
        for level, num_blocks in zip(reversed(range(num_levels)), dec_blk_nums):
            # 1x1 conv to twice the channels, then pixel shuffle: 2x size, half the channels.
            self.ups.append(nn.Sequential(nn.Conv2d(channels, 2 * channels, 1, bias=False), nn.PixelShuffle(2)))
            channels //= 2
            self.decoders.append(nafblocks(num_blocks, channels, windows[level]))

    def forward(self, image):
        check_input('NAFNet', image, self.img_channel)
        height, width = image.shape[-2:]
        padded = pad_to_multiple(image, self.size_multiple)
        x = self.intro(padded)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        return crop_to_scale(self.ending(x) + padded, height, width)
