"""MPRNet (Zamir et al., CVPR 2021), the deblurring model, as a BasicSR arch.

Three stages work on a multi-patch hierarchy of the same image::

    stage 1: 4 quarter patches -> shared U-Net encoder -> features joined left|right
             -> U-Net decoder on each half -> SAM (image: stage1)
    stage 2: 2 half patches + SAM features -> U-Net encoder fused with stage 1 (CSFF)
             -> features joined top/bottom -> U-Net decoder -> SAM (image: stage2)
    stage 3: full image + SAM features -> ORSNet fused with stage 2 -> conv + input (final)

Module and parameter names follow the authors' ``Deblurring/MPRNet.py`` so their GoPro
checkpoint loads with ``strict=True``. One PReLU is shared by every channel-attention
block, as in the official model (its state dict repeats that one weight under each block).
"""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple

OUTPUT_SCALE_FACTORS = {'final': 1, 'stage2': 1, 'stage1': 1}


def conv(in_channels, out_channels, kernel_size, bias=False):
    """A size-preserving convolution (odd ``kernel_size``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class CALayer(nn.Module):
    """Channel attention: scale each channel by a gate computed from its global mean."""

    def __init__(self, channels, reduction, bias):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=bias), nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=bias), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class CAB(nn.Module):
    """Channel attention block: conv-act-conv, channel attention, identity skip."""

    def __init__(self, channels, kernel_size, reduction, bias, act):
        super().__init__()
        self.CA = CALayer(channels, reduction, bias)
        self.body = nn.Sequential(conv(channels, channels, kernel_size, bias), act,
                                  conv(channels, channels, kernel_size, bias))

    def forward(self, x):
        return self.CA(self.body(x)) + x


def cab_group(count, channels, kernel_size, reduction, bias, act):
    return nn.Sequential(*(CAB(channels, kernel_size, reduction, bias, act) for _ in range(count)))


class SAM(nn.Module):
    """Supervised attention module: predicts this stage's image (residual over ``image``)
    and uses it to gate the features passed on to the next stage."""

    def __init__(self, channels, image_channels, kernel_size, bias):
        super().__init__()
        self.conv1 = conv(channels, channels, kernel_size, bias)
        self.conv2 = conv(channels, image_channels, kernel_size, bias)
        self.conv3 = conv(image_channels, channels, kernel_size, bias)

    def forward(self, features, image):
        restored = self.conv2(features) + image
        gate = torch.sigmoid(self.conv3(restored))
        return self.conv1(features) * gate + features, restored


class DownSample(nn.Module):
    """Halve the resolution (bilinear) and widen by ``extra`` channels (1x1 conv)."""

    def __init__(self, channels, extra):
        super().__init__()
        self.down = nn.Sequential(nn.Upsample(scale_factor=0.5, mode='bilinear', align_corners=False),
                                  nn.Conv2d(channels, channels + extra, 1, bias=False))

    def forward(self, x):
        return self.down(x)


class UpSample(nn.Module):
    """Double the resolution (bilinear) and narrow from ``channels + extra`` to ``channels``."""

    def __init__(self, channels, extra):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False),
                                nn.Conv2d(channels + extra, channels, 1, bias=False))

    def forward(self, x):
        return self.up(x)


class SkipUpSample(UpSample):
    """UpSample, then add the encoder skip of the finer level."""

    def forward(self, x, skip):
        return self.up(x) + skip


class Encoder(nn.Module):
    """Three-level U-Net encoder (two CABs per level). With ``csff`` it adds 1x1-projected
    encoder and decoder features of the previous stage at each level (cross-stage feature
    fusion); ``forward`` returns the three level outputs, finest first."""

    def __init__(self, widths, kernel_size, reduction, act, bias, csff):
        super().__init__()
        for level, width in enumerate(widths, start=1):
            setattr(self, f'encoder_level{level}', cab_group(2, width, kernel_size, reduction, bias, act))
        self.down12 = DownSample(widths[0], widths[1] - widths[0])
        self.down23 = DownSample(widths[1], widths[2] - widths[1])
        self.csff = csff
        if csff:
            for kind in ('enc', 'dec'):
                for level, width in enumerate(widths, start=1):
                    setattr(self, f'csff_{kind}{level}', nn.Conv2d(width, width, 1, bias=bias))

    def forward(self, x, stage1_encoder=None, stage1_decoder=None):
        outputs = []
        levels = (self.encoder_level1, self.encoder_level2, self.encoder_level3)
        downs = (None, self.down12, self.down23)
        for level, (cabs, down) in enumerate(zip(levels, downs)):
            x = cabs(x if down is None else down(x))
            if self.csff:
                fuse_encoder = getattr(self, f'csff_enc{level + 1}')
                fuse_decoder = getattr(self, f'csff_dec{level + 1}')
                x = x + fuse_encoder(stage1_encoder[level]) + fuse_decoder(stage1_decoder[level])
            outputs.append(x)
        return outputs


class Decoder(nn.Module):
    """Three-level U-Net decoder (two CABs per level; encoder skips pass a CAB first);
    ``forward`` returns the three level outputs, finest first."""

    def __init__(self, widths, kernel_size, reduction, act, bias):
        super().__init__()
        for level, width in enumerate(widths, start=1):
            setattr(self, f'decoder_level{level}', cab_group(2, width, kernel_size, reduction, bias, act))
        self.skip_attn1 = CAB(widths[0], kernel_size, reduction, bias, act)
        self.skip_attn2 = CAB(widths[1], kernel_size, reduction, bias, act)
        self.up21 = SkipUpSample(widths[0], widths[1] - widths[0])
        self.up32 = SkipUpSample(widths[1], widths[2] - widths[1])

    def forward(self, encoder_outputs):
        enc1, enc2, enc3 = encoder_outputs
        dec3 = self.decoder_level3(enc3)
        dec2 = self.decoder_level2(self.up32(dec3, self.skip_attn2(enc2)))
        dec1 = self.decoder_level1(self.up21(dec2, self.skip_attn1(enc1)))
        return [dec1, dec2, dec3]


class ORB(nn.Module):
    """Original-resolution block: ``num_cab`` CABs and a conv, with an identity skip."""

    def __init__(self, channels, kernel_size, reduction, act, bias, num_cab):
        super().__init__()
        self.body = nn.Sequential(*cab_group(num_cab, channels, kernel_size, reduction, bias, act),
                                  conv(channels, channels, kernel_size))  # bias-free even with bias=True, as official

    def forward(self, x):
        return self.body(x) + x


class ORSNet(nn.Module):
    """Stage 3: three ORBs at full resolution; after each, stage 2's encoder and decoder
    features of one U-Net level are brought up to full resolution and added."""

    def __init__(self, unet_widths, orsnet_width, kernel_size, reduction, act, bias, num_cab):
        super().__init__()
        n_feat, mid = unet_widths[0], unet_widths[1] - unet_widths[0]
        for index in (1, 2, 3):
            setattr(self, f'orb{index}', ORB(orsnet_width, kernel_size, reduction, act, bias, num_cab))
        self.up_enc1 = UpSample(n_feat, mid)
        self.up_dec1 = UpSample(n_feat, mid)
        self.up_enc2 = nn.Sequential(UpSample(unet_widths[1], mid), UpSample(n_feat, mid))
        self.up_dec2 = nn.Sequential(UpSample(unet_widths[1], mid), UpSample(n_feat, mid))
        for kind in ('enc', 'dec'):
            for index in (1, 2, 3):
                setattr(self, f'conv_{kind}{index}', nn.Conv2d(n_feat, orsnet_width, 1, bias=bias))

    def forward(self, x, encoder_outputs, decoder_outputs):
        enc1, enc2, enc3 = encoder_outputs
        dec1, dec2, dec3 = decoder_outputs
        x = self.orb1(x)
        x = x + self.conv_enc1(enc1) + self.conv_dec1(dec1)
        x = self.orb2(x)
        x = x + self.conv_enc2(self.up_enc1(enc2)) + self.conv_dec2(self.up_dec1(dec2))
        x = self.orb3(x)
        return x + self.conv_enc3(self.up_enc2(enc3)) + self.conv_dec3(self.up_dec2(dec3))


# The multi-patch hierarchy keeps patches in the batch dimension, so each stage runs its
# sub-network once on all patches: rows split into [top, bottom], columns into [left, right].
# Slicing at ``size // 2`` (not ``chunk``) keeps the shapes symbolic for export.
def split_rows(x):
    middle = x.shape[2] // 2
    return torch.cat([x[:, :, :middle], x[:, :, middle:]], dim=0)


def split_columns(x):
    middle = x.shape[3] // 2
    return torch.cat([x[..., :middle], x[..., middle:]], dim=0)


def join_rows(x):
    batch = x.shape[0] // 2
    return torch.cat([x[:batch], x[batch:]], dim=2)


def join_columns(x):
    batch = x.shape[0] // 2
    return torch.cat([x[:batch], x[batch:]], dim=3)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_arguments(in_c, out_c, n_feat, scale_unetfeats, scale_orsnetfeats, num_cab, kernel_size, reduction,
                     bias):
    """Raise ValueError, naming the argument, for anything MPRNet cannot be built from."""
    for name, value in (('in_c', in_c), ('out_c', out_c), ('n_feat', n_feat), ('num_cab', num_cab)):
        if not _is_int(value) or value < 1:
            raise ValueError(f'MPRNet: {name} must be a positive int, got {value!r}')
    for name, value in (('scale_unetfeats', scale_unetfeats), ('scale_orsnetfeats', scale_orsnetfeats)):
        if not _is_int(value) or value < 0:
            raise ValueError(f'MPRNet: {name} must be an int >= 0, got {value!r}')
    if out_c != in_c:
        raise ValueError(f'MPRNet: out_c must equal in_c (the network adds its input to every output), '
                         f'got out_c={out_c!r}, in_c={in_c!r}')
    if not _is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f'MPRNet: kernel_size must be a positive odd int, got {kernel_size!r}')
    if not _is_int(reduction) or not 1 <= reduction <= n_feat:
        raise ValueError(f'MPRNet: reduction must be an int between 1 and n_feat ({n_feat}), got {reduction!r}')
    if not isinstance(bias, bool):
        raise ValueError(f'MPRNet: bias must be true or false, got {bias!r}')


@ARCH_REGISTRY.register()
class MPRNet(nn.Module):
    """MPRNet for deblurring; the defaults are the authors' GoPro model (20.13M parameters).

    Args:
        in_c (int): image channels of the input. Default 3.
        out_c (int): image channels of the output; must equal ``in_c`` (every stage
            predicts a residual over its input). Default 3.
        n_feat (int): U-Net width at full resolution. Default 96.
        scale_unetfeats (int): channels the U-Net adds per level down. Default 48.
        scale_orsnetfeats (int): channels ORSNet adds over ``n_feat``. Default 32.
        num_cab (int): CABs per ORB. Default 8.
        kernel_size (int): odd kernel size of the 3x3-style convolutions. Default 3.
        reduction (int): channel-attention squeeze ratio. Default 4.
        bias (bool): biases in the convolutions. Default False.

    Input: ``(N, in_c, H, W)``, any H and W >= 1. Stage 1 splits the image into quarters
    and its U-Net halves their size twice, so the input is padded at the bottom and right
    to a multiple of 8 (``self.size_multiple``; reflection, replication when too small, as
    the authors' demo pads) and the outputs are cropped back.

    Output:
        eval mode: the final (stage-3) image ``(N, out_c, H, W)``.
        training mode: ``{'final', 'stage2', 'stage1'}`` images, all ``(N, out_c, H, W)``
            (``self.output_scale_factors``: factor 1 each), each supervised against the
            ground truth.
    """

    def __init__(self, in_c=3, out_c=3, n_feat=96, scale_unetfeats=48, scale_orsnetfeats=32, num_cab=8,
                 kernel_size=3, reduction=4, bias=False, **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f'MPRNet: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are in_c, '
                             'out_c, n_feat, scale_unetfeats, scale_orsnetfeats, num_cab, kernel_size, reduction, bias')
        _check_arguments(in_c, out_c, n_feat, scale_unetfeats, scale_orsnetfeats, num_cab, kernel_size, reduction,
                         bias)
        self.in_channels = in_c
        self.size_multiple = 8
        self.output_scale_factors = dict(OUTPUT_SCALE_FACTORS)
        unet_widths = (n_feat, n_feat + scale_unetfeats, n_feat + 2 * scale_unetfeats)
        orsnet_width = n_feat + scale_orsnetfeats
        act = nn.PReLU()  # one activation (one learned slope) for the whole network, as official

        def shallow_features():
            return nn.Sequential(conv(in_c, n_feat, kernel_size, bias), CAB(n_feat, kernel_size, reduction, bias, act))

        self.shallow_feat1 = shallow_features()
        self.shallow_feat2 = shallow_features()
        self.shallow_feat3 = shallow_features()
        self.stage1_encoder = Encoder(unet_widths, kernel_size, reduction, act, bias, csff=False)
        self.stage1_decoder = Decoder(unet_widths, kernel_size, reduction, act, bias)
        self.stage2_encoder = Encoder(unet_widths, kernel_size, reduction, act, bias, csff=True)
        self.stage2_decoder = Decoder(unet_widths, kernel_size, reduction, act, bias)
        self.stage3_orsnet = ORSNet(unet_widths, orsnet_width, kernel_size, reduction, act, bias, num_cab)
        self.sam12 = SAM(n_feat, in_c, 1, bias)
        self.sam23 = SAM(n_feat, in_c, 1, bias)
        self.concat12 = conv(2 * n_feat, n_feat, kernel_size, bias)
        self.concat23 = conv(2 * n_feat, orsnet_width, kernel_size, bias)
        self.tail = conv(orsnet_width, out_c, kernel_size, bias)

    def forward(self, image):
        check_input('MPRNet', image, self.in_channels)
        height, width = image.shape[-2:]
        full = pad_to_multiple(image, self.size_multiple)
        halves = split_rows(full)  # [top; bottom] in the batch dimension
        quarters = split_columns(halves)  # [top-left; bottom-left; top-right; bottom-right]

        # Stage 1: encode the quarters, decode each half from its two quarters' features.
        stage1_encoder = [join_columns(f) for f in self.stage1_encoder(self.shallow_feat1(quarters))]
        stage1_decoder = self.stage1_decoder(stage1_encoder)
        sam_features, stage1_image = self.sam12(stage1_decoder[0], halves)

        # Stage 2: encode the halves, decode the whole image.
        stage2_input = self.concat12(torch.cat([self.shallow_feat2(halves), sam_features], dim=1))
        stage2_encoder = [join_rows(f) for f in self.stage2_encoder(stage2_input, stage1_encoder, stage1_decoder)]
        stage2_decoder = self.stage2_decoder(stage2_encoder)
        sam_features, stage2_image = self.sam23(stage2_decoder[0], full)

        # Stage 3: full resolution throughout.
        stage3_input = self.concat23(torch.cat([self.shallow_feat3(full), sam_features], dim=1))
        final = self.tail(self.stage3_orsnet(stage3_input, stage2_encoder, stage2_decoder)) + full

        if not self.training:
            return crop_to_scale(final, height, width)
        return {name: crop_to_scale(output, height, width)
                for name, output in zip(self.output_scale_factors, (final, stage2_image, join_rows(stage1_image)))}
