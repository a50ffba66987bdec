"""MIMO-UNet and MIMO-UNet+ (Cho et al., ICCV 2021) as BasicSR archs.

One U-Net takes the blurred image at three scales (full, 1/2, 1/4) and returns a
restored image at each::

    encoder:  conv(B) -> EBlock -> Down, FAM(., SCM(B/2)) -> EBlock -> Down, FAM(., SCM(B/4)) -> EBlock
    AFF:      every encoder level, resized and concatenated, fused into the skips of levels 1 and 2
    decoder:  DBlock -> image at 1/4 -> Up, cat(AFF skip) -> DBlock -> image at 1/2
              -> Up, cat(AFF skip) -> DBlock -> full-resolution image

MIMO-UNet+ is the same network with 20 residual blocks per EBlock/DBlock instead of 8
and channel dropout on the two AFF skips. Module and parameter names follow the authors'
``models/MIMOUNet.py`` and ``models/layers.py`` so their GoPro checkpoints load with
``strict=True``.
"""
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple

IMAGE_CHANNELS = 3
OUTPUT_SCALE_FACTORS = {'final': 1, 'scale2': 2, 'scale3': 4}


class BasicConv(nn.Module):
    """Convolution (or stride-2 transposed convolution) with bias, then optionally ReLU."""

    def __init__(self, in_channel, out_channel, kernel_size, stride=1, relu=True, transpose=False):
        super().__init__()
        if transpose:  # kernel 4, stride 2, padding 1: exactly doubles the size
            layer = nn.ConvTranspose2d(in_channel, out_channel, kernel_size, stride, padding=kernel_size // 2 - 1)
        else:
            layer = nn.Conv2d(in_channel, out_channel, kernel_size, stride, padding=kernel_size // 2)
        self.main = nn.Sequential(layer, nn.ReLU(inplace=True)) if relu else nn.Sequential(layer)

    def forward(self, x):
        return self.main(x)


class ResBlock(nn.Module):
    """conv3-ReLU-conv3 with an identity skip."""

    def __init__(self, channel):
        super().__init__()
        self.main = nn.Sequential(BasicConv(channel, channel, 3), BasicConv(channel, channel, 3, relu=False))

    def forward(self, x):
        return self.main(x) + x


class ResGroup(nn.Module):
    """``num_res`` ResBlocks: the official EBlock and DBlock, which are the same."""

    def __init__(self, channel, num_res):
        super().__init__()
        self.layers = nn.Sequential(*(ResBlock(channel) for _ in range(num_res)))

    def forward(self, x):
        return self.layers(x)


class AFF(nn.Module):
    """Asymmetric feature fusion: all encoder levels, concatenated at one scale, to one skip."""

    def __init__(self, in_channel, out_channel):
        super().__init__()
        self.conv = nn.Sequential(BasicConv(in_channel, out_channel, 1), BasicConv(out_channel, out_channel, 3,
                                                                                   relu=False))

    def forward(self, *features):
        return self.conv(torch.cat(features, dim=1))


class SCM(nn.Module):
    """Shallow convolutional module: features of a downscaled input image, which keep the
    image itself as their first three channels before the final 1x1 conv."""

    def __init__(self, out_plane):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(IMAGE_CHANNELS, out_plane // 4, 3), BasicConv(out_plane // 4, out_plane // 2, 1),
            BasicConv(out_plane // 2, out_plane // 2, 3), BasicConv(out_plane // 2, out_plane - IMAGE_CHANNELS, 1))
        self.conv = BasicConv(out_plane, out_plane, 1, relu=False)

    def forward(self, image):
        return self.conv(torch.cat([image, self.main(image)], dim=1))


class FAM(nn.Module):
    """Feature attention module: encoder features refined by their product with SCM features."""

    def __init__(self, channel):
        super().__init__()
        self.merge = BasicConv(channel, channel, 3, relu=False)

    def forward(self, features, scm_features):
        return features + self.merge(features * scm_features)


def _check_arguments(arch, num_res, base_channel):
    for name, value, minimum in (('num_res', num_res, 1), ('base_channel', base_channel, 2)):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f'{arch}: {name} must be an int >= {minimum}, got {value!r}')


def half(x):
    return F.interpolate(x, scale_factor=0.5)  # nearest: every second pixel, as official


def double(x):
    return F.interpolate(x, scale_factor=2)  # nearest, as official


@ARCH_REGISTRY.register()
class MIMOUNet(nn.Module):
    """MIMO-UNet; the defaults are the authors' GoPro model (6.81M parameters).

    Args:
        num_res (int): residual blocks in each of the six EBlocks/DBlocks. Default 8.
        base_channel (int): width at full resolution, doubled per level down (the official
            code fixes it at 32; smaller values give narrow variants for CPU studies).
            Default 32.

    Input: ``(N, 3, H, W)``, any H and W >= 1. The network halves the resolution twice, so
    the input is padded at the bottom and right to a multiple of 4 (``self.size_multiple``;
    reflection, replication when too small) and the outputs are cropped back. The 1/2 and
    1/4 inputs are nearest-neighbour subsamples (every second pixel), as official.

    Output:
        eval mode: the full-resolution image ``(N, 3, H, W)``.
        training mode: ``{'final', 'scale2', 'scale3'}``: the images at full, 1/2 and 1/4
            resolution, of sizes ``(H // f, W // f)`` for the factors f in
            ``self.output_scale_factors`` (1, 2, 4).
    """

    def __init__(self, num_res=8, base_channel=32, **unknown):
        super().__init__()
        arch = type(self).__name__
        if unknown:
            raise ValueError(f'{arch}: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are '
                             'num_res, base_channel')
        _check_arguments(arch, num_res, base_channel)
        self.size_multiple = 4
        self.output_scale_factors = dict(OUTPUT_SCALE_FACTORS)
        widths = (base_channel, 2 * base_channel, 4 * base_channel)

        self.Encoder = nn.ModuleList(ResGroup(width, num_res) for width in widths)
        self.feat_extract = nn.ModuleList([
            BasicConv(IMAGE_CHANNELS, widths[0], 3),
            BasicConv(widths[0], widths[1], 3, stride=2),
            BasicConv(widths[1], widths[2], 3, stride=2),
            BasicConv(widths[2], widths[1], 4, stride=2, transpose=True),
            BasicConv(widths[1], widths[0], 4, stride=2, transpose=True),
            BasicConv(widths[0], IMAGE_CHANNELS, 3, relu=False),
        ])
        self.Decoder = nn.ModuleList(ResGroup(width, num_res) for width in reversed(widths))
        self.Convs = nn.ModuleList([BasicConv(widths[2], widths[1], 1), BasicConv(widths[1], widths[0], 1)])
        self.ConvsOut = nn.ModuleList([BasicConv(widths[2], IMAGE_CHANNELS, 3, relu=False),
                                       BasicConv(widths[1], IMAGE_CHANNELS, 3, relu=False)])
        self.AFFs = nn.ModuleList([AFF(sum(widths), widths[0]), AFF(sum(widths), widths[1])])
        self.FAM1 = FAM(widths[2])
        self.SCM1 = SCM(widths[2])
        self.FAM2 = FAM(widths[1])
        self.SCM2 = SCM(widths[1])

    def drop_skips(self, skip1, skip2):
        """Hook for MIMO-UNet+'s dropout on the AFF skips; MIMO-UNet keeps them."""
        return skip1, skip2

    def forward(self, image):
        check_input(type(self).__name__, image, IMAGE_CHANNELS)
        height, width = image.shape[-2:]
        x = pad_to_multiple(image, self.size_multiple)
        x_2 = half(x)
        x_4 = half(x_2)

        enc1 = self.Encoder[0](self.feat_extract[0](x))
        enc2 = self.Encoder[1](self.FAM2(self.feat_extract[1](enc1), self.SCM2(x_2)))
        enc3 = self.Encoder[2](self.FAM1(self.feat_extract[2](enc2), self.SCM1(x_4)))

        enc3_at_2 = double(enc3)
        skip2 = self.AFFs[1](half(enc1), enc2, enc3_at_2)
        skip1 = self.AFFs[0](enc1, double(enc2), double(enc3_at_2))
        skip1, skip2 = self.drop_skips(skip1, skip2)

        z = self.Decoder[0](enc3)
        image_4 = self.ConvsOut[0](z) + x_4
        z = self.Decoder[1](self.Convs[0](torch.cat([self.feat_extract[3](z), skip2], dim=1)))
        image_2 = self.ConvsOut[1](z) + x_2
        z = self.Decoder[2](self.Convs[1](torch.cat([self.feat_extract[4](z), skip1], dim=1)))
        final = self.feat_extract[5](z) + x

        if not self.training:
            return crop_to_scale(final, height, width)
        return {name: crop_to_scale(output, height, width, factor)
                for (name, factor), output in zip(self.output_scale_factors.items(), (final, image_2, image_4))}


@ARCH_REGISTRY.register()
class MIMOUNetPlus(MIMOUNet):
    """MIMO-UNet+: MIMO-UNet with 20 residual blocks per EBlock/DBlock and 2D dropout
    (p = 0.1, training only) on the two AFF skips; defaults are the authors' GoPro model
    (16.11M parameters).

    Args:
        num_res (int): residual blocks in each EBlock/DBlock. Default 20.
        base_channel (int): width at full resolution (official: 32). Default 32.

    Input and output as for ``MIMOUNet``.
    """

    def __init__(self, num_res=20, base_channel=32, **unknown):
        super().__init__(num_res, base_channel, **unknown)
        self.drop1 = nn.Dropout2d(0.1)
        self.drop2 = nn.Dropout2d(0.1)

    def drop_skips(self, skip1, skip2):
        skip2 = self.drop2(skip2)  # drop2 first: the official order of random draws
        return self.drop1(skip1), skip2
