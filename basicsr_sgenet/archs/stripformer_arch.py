"""Stripformer: the strip transformer of Tsai et al., "Stripformer: Strip Transformer for
Fast Image Deblurring" (ECCV 2022), as published in pp00704831/Stripformer-ECCV-2022-.

A convolutional encoder down to 1/4 resolution, transformer blocks that attend along
horizontal and vertical strips, and a convolutional decoder with a global residual::

    x ──pad──> conv encoder (1/1, 1/2, 1/4) -> [Intra-SA, Inter-SA] x 6 at 1/4
           -> up, concat 1/2 skip, [Intra-SA, Inter-SA] x 3 at 1/2
           -> up, concat 1/1 skip, convs -> + x

Intra-strip attention: half the channels attend within each row (tokens: the pixels of
the row), the other half within each column. Inter-strip attention: half the channels
attend between rows (one token per row: its whole C/2 x W strip), the other half between
columns. Each block ends with an MLP and a depthwise-conv positional encoding (PEG).

Parameter names and shapes are the official ones, so the authors' checkpoints
(``Stripformer_gopro.pth``, ``Stripformer_realblur_J.pth``, ``..._R.pth``) load with
``strict=True``. The authors' network works on images shifted to [-0.5, 0.5]; this one
takes [0, 1] images and shifts inside, so their weights give their results.
"""
from collections.abc import Sequence

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from basicsr_sgenet.archs.arch_util import check_input, crop_to_scale, pad_to_multiple

# The authors' data pipeline feeds (image - 0.5); the network's residual keeps the shift.
INPUT_SHIFT = 0.5
# The network halves the size twice; the authors' RealBlur test scripts reflect-pad to a
# multiple of 8, and strip attention spans whole rows and columns, so every output pixel
# depends on the padding: pad as they do.
SIZE_MULTIPLE = 8


def leaky_relu(x):
    return F.leaky_relu(x, 0.2)


def conv_act(in_channels, out_channels, kernel_size=3, stride=1):
    """Convolution then LeakyReLU(0.2): the ``Sequential`` whose conv is key ``.0``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2),
                         nn.LeakyReLU(0.2))


def conv_act_conv(in_channels, channels, first_kernel=3):
    """The branch of a residual block: conv, LeakyReLU(0.2), conv3 (keys ``.0`` and ``.2``)."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, first_kernel, padding=first_kernel // 2),
                         nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 3, padding=1))


def up_act(in_channels, out_channels):
    """2x transposed convolution then LeakyReLU(0.2)."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2))


def multi_head_attention(query, key, value, heads):
    """Softmax attention over the tokens of (N, L, D) tensors, D split into ``heads``
    consecutive groups, scaled by 1/sqrt(D / heads).

    Inter-strip tokens are whole strips, so D (and the scale) grows with the image size.
    The head size is counted by a tensor op, so an exported graph computes the scale at
    run time (a Python ``math.sqrt`` of the size would freeze the traced size's scale);
    its float32 square root is the authors' scale exactly, where
    ``scaled_dot_product_attention`` would sum in another order."""
    batch, _, dim = query.shape
    query, key, value = (t.reshape(batch, -1, heads, dim // heads).transpose(1, 2) for t in (query, key, value))
    head_size = torch.ones_like(query[:1, :1, :1]).sum()
    scores = torch.matmul(query, key.transpose(-1, -2)) / head_size.sqrt()
    out = torch.matmul(scores.softmax(dim=-1), value)
    return out.transpose(1, 2).reshape(batch, -1, dim)


class Mlp(nn.Module):
    """Per-token MLP, 4x expansion with GELU; initialised as the authors do (Xavier weights,
    near-zero biases)."""

    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        for layer in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=1e-6)

    def forward(self, tokens):
        return self.fc2(F.gelu(self.fc1(tokens)))


class PEG(nn.Module):
    """Conditional positional encoding: x + depthwise conv3(x). The conv is also called
    ``PEG`` (checkpoint key ``PEG.PEG.weight``)."""

    def __init__(self, dim):
        super().__init__()
        self.PEG = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x):
        return x + self.PEG(x)


class StripBlock(nn.Module):
    """What both attention blocks share::

        y   = x + fuse_out(strip_attention(conv_input(norm(x))))
        z   = y + MLP(norm(y))         (per pixel)
        out = z + dwconv3(z)           (PEG)

    Subclasses create the layers (in the official order, so state_dict() lists keys as
    the checkpoints do) and define ``strip_attention`` on the two channel halves.
    """

    def __init__(self, heads):
        super().__init__()
        self.heads = heads

    def forward(self, x):
        normed = self.attention_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        rows_half, columns_half = self.conv_input(normed).chunk(2, dim=1)
        x = x + self.fuse_out(torch.cat(self.strip_attention(rows_half, columns_half), dim=1))
        tokens = x.permute(0, 2, 3, 1)
        x = (tokens + self.ffn(self.ffn_norm(tokens))).permute(0, 3, 1, 2)
        return self.PEG(x)


class Intra_SA(StripBlock):
    """Intra-strip attention: the pixels of each row attend to each other (first channel
    half), and the pixels of each column (second half). Q, K, V by linear maps per pixel."""

    def __init__(self, dim, heads):
        super().__init__(heads)
        half = dim // 2
        self.attention_norm = nn.LayerNorm(dim)
        self.conv_input = nn.Conv2d(dim, dim, 1)
        self.qkv_local_h = nn.Linear(half, 3 * half)
        self.qkv_local_v = nn.Linear(half, 3 * half)
        self.fuse_out = nn.Conv2d(dim, dim, 1)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = Mlp(dim)
        self.PEG = PEG(dim)

    def strip_attention(self, rows_half, columns_half):
        batch, half, height, width = rows_half.shape
        rows = rows_half.permute(0, 2, 3, 1).reshape(batch * height, width, half)
        columns = columns_half.permute(0, 3, 2, 1).reshape(batch * width, height, half)
        rows = multi_head_attention(*self.qkv_local_h(rows).chunk(3, dim=-1), self.heads)
        columns = multi_head_attention(*self.qkv_local_v(columns).chunk(3, dim=-1), self.heads)
        return (rows.reshape(batch, height, width, half).permute(0, 3, 1, 2),
                columns.reshape(batch, width, height, half).permute(0, 3, 2, 1))


class Inter_SA(StripBlock):
    """Inter-strip attention: whole rows attend to each other (first channel half; a row's
    token is its C/2 x W strip, flattened channel-major), and whole columns (second half).
    Q, K, V by 1x1 convolutions."""

    def __init__(self, dim, heads):
        super().__init__(heads)
        half = dim // 2
        self.attention_norm = nn.LayerNorm(dim)
        self.conv_input = nn.Conv2d(dim, dim, 1)
        self.conv_h = nn.Conv2d(half, 3 * half, 1)
        self.conv_v = nn.Conv2d(half, 3 * half, 1)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = Mlp(dim)
        self.fuse_out = nn.Conv2d(dim, dim, 1)
        self.PEG = PEG(dim)

    def strip_attention(self, rows_half, columns_half):
        batch, half, height, width = rows_half.shape
        # (N, C/2, H, W) -> one token per row: (N, H, C/2 * W); per column: (N, W, C/2 * H).
        rows = [t.permute(0, 2, 1, 3).reshape(batch, height, -1) for t in self.conv_h(rows_half).chunk(3, dim=1)]
        columns = [t.permute(0, 3, 1, 2).reshape(batch, width, -1) for t in self.conv_v(columns_half).chunk(3, dim=1)]
        rows = multi_head_attention(*rows, self.heads)
        columns = multi_head_attention(*columns, self.heads)
        return (rows.reshape(batch, height, half, width).permute(0, 2, 1, 3),
                columns.reshape(batch, width, half, height).permute(0, 2, 3, 1))


def strip_blocks(count, dim, heads):
    """``count`` blocks alternating Intra_SA and Inter_SA, Intra first."""
    return [(Intra_SA if index % 2 == 0 else Inter_SA)(dim, heads) for index in range(count)]


class Embeddings(nn.Module):
    """The encoder: three residual blocks at full and at half resolution, then a strided
    conv to 1/4. Returns the 1/4 features and the full- and half-resolution skips."""

    def __init__(self, img_channel, widths):
        super().__init__()
        full, half, quarter = widths
        self.en_layer1_1 = conv_act(img_channel, full)
        self.en_layer1_2, self.en_layer1_3, self.en_layer1_4 = (conv_act_conv(full, full) for _ in range(3))
        self.en_layer2_1 = conv_act(full, half, stride=2)
        self.en_layer2_2, self.en_layer2_3, self.en_layer2_4 = (conv_act_conv(half, half) for _ in range(3))
        self.en_layer3_1 = conv_act(half, quarter, stride=2)

    def forward(self, x):
        x = self.en_layer1_1(x)
        for block in (self.en_layer1_2, self.en_layer1_3, self.en_layer1_4):
            x = leaky_relu(block(x) + x)
        skip_full = x
        x = self.en_layer2_1(x)
        for block in (self.en_layer2_2, self.en_layer2_3, self.en_layer2_4):
            x = leaky_relu(block(x) + x)
        return self.en_layer3_1(x), skip_full, x


class Embeddings_output(nn.Module):
    """The decoder: up to 1/2, fuse the skip (1x1), strip-attention blocks, up to full
    size, fuse the skip in a residual block, one more residual block, conv3 to the image
    with a final LeakyReLU (as the authors', before the global residual)."""

    def __init__(self, img_channel, widths, decoder_width, heads, num_blocks):
        super().__init__()
        full, half, quarter = widths
        self.de_layer3_1 = up_act(quarter, decoder_width)
        self.de_layer2_2 = conv_act(decoder_width + half, decoder_width, kernel_size=1)
        self.num_blocks = num_blocks
        for index, block in enumerate(strip_blocks(num_blocks, decoder_width, heads), start=1):
            setattr(self, f'de_block_{index}', block)
        self.de_layer2_1 = up_act(decoder_width, full)
        self.de_layer1_3 = conv_act_conv(2 * full, full, first_kernel=1)
        self.de_layer1_2 = conv_act_conv(full, full)
        self.de_layer1_1 = conv_act(full, img_channel)

    def forward(self, x, skip_full, skip_half):
        x = self.de_layer2_2(torch.cat([self.de_layer3_1(x), skip_half], dim=1))
        for index in range(1, self.num_blocks + 1):
            x = getattr(self, f'de_block_{index}')(x)
        x = self.de_layer2_1(x)
        x = leaky_relu(self.de_layer1_3(torch.cat([x, skip_full], dim=1)) + x)
        x = leaky_relu(self.de_layer1_2(x) + x)
        return self.de_layer1_1(x)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_arguments(img_channel, widths, decoder_width, heads, decoder_heads, num_blocks, decoder_blocks):
    """Raise ValueError, naming the argument, for anything Stripformer cannot be built from."""
    if not _is_int(img_channel) or img_channel < 1:
        raise ValueError(f'Stripformer: img_channel must be a positive int, got {img_channel!r}')
    if not (isinstance(widths, Sequence) and not isinstance(widths, str) and len(widths) == 3
            and all(_is_int(w) and w >= 1 for w in widths)):
        raise ValueError(f'Stripformer: widths must be 3 positive ints (channels at 1/1, 1/2 and 1/4 '
                         f'resolution), got {widths!r}')
    for name, value in (('heads', heads), ('decoder_heads', decoder_heads), ('num_blocks', num_blocks),
                        ('decoder_blocks', decoder_blocks)):
        if not _is_int(value) or value < 1:
            raise ValueError(f'Stripformer: {name} must be a positive int, got {value!r}')
    if not _is_int(decoder_width) or decoder_width < 1:
        raise ValueError(f'Stripformer: decoder_width must be a positive int, got {decoder_width!r}')
    # Each block splits its channels in half (rows, columns) and each half into heads.
    for width_name, dim, heads_name, num_heads in (('widths[2]', widths[2], 'heads', heads),
                                                   ('decoder_width', decoder_width, 'decoder_heads',
                                                    decoder_heads)):
        if dim % 2 or (dim // 2) % num_heads:
            raise ValueError(f'Stripformer: {width_name} ({dim}) must be even and {heads_name} ({num_heads}) must '
                             f'divide half of it')


@ARCH_REGISTRY.register()
class Stripformer(nn.Module):
    """Stripformer. The defaults are the authors' model (their only configuration, used
    for GoPro, HIDE and RealBlur; 19.7M parameters).

    Args:
        img_channel (int): image channels, in and out. Default 3.
        widths (list of 3 int): encoder channels at 1/1, 1/2 and 1/4 resolution (the
            1/4 level is where the main transformer blocks run). Default [64, 128, 320].
        decoder_width (int): channels of the decoder's 1/2-resolution transformer
            blocks. Default 192.
        heads (int): attention heads of the 1/4-resolution blocks; must divide
            ``widths[2] / 2``. Default 5.
        decoder_heads (int): attention heads of the decoder's blocks; must divide
            ``decoder_width / 2``. Default 3.
        num_blocks (int): transformer blocks at 1/4 resolution, alternating intra- and
            inter-strip (``Trans_block_1`` ...). Default 12.
        decoder_blocks (int): transformer blocks in the decoder (``de_block_1`` ...).
            Default 6.

    Input: ``(N, img_channel, H, W)`` in [0, 1], any H and W >= 1, padded at the bottom
    and right to a multiple of 8 (reflection, as the authors' RealBlur test scripts, or
    replication where the image is too small) and cropped back.

    Output: the restored image, ``(N, img_channel, H, W)``, in eval and training mode
    (one supervised image: the dict convention's ``final``).
    """

    def __init__(self, img_channel=3, widths=(64, 128, 320), decoder_width=192, heads=5, decoder_heads=3,
                 num_blocks=12, decoder_blocks=6, **unknown):
        super().__init__()
        if unknown:
            raise ValueError(f'Stripformer: unknown argument(s) {", ".join(sorted(unknown))}; valid arguments are '
                             'img_channel, widths, decoder_width, heads, decoder_heads, num_blocks, decoder_blocks')
        _check_arguments(img_channel, widths, decoder_width, heads, decoder_heads, num_blocks, decoder_blocks)
        self.img_channel = img_channel
        self.size_multiple = SIZE_MULTIPLE
        self.output_scale_factors = {'final': 1}
        self.num_blocks = num_blocks
        self.encoder = Embeddings(img_channel, widths)
        for index, block in enumerate(strip_blocks(num_blocks, widths[2], heads), start=1):
            setattr(self, f'Trans_block_{index}', block)
        self.decoder = Embeddings_output(img_channel, widths, decoder_width, decoder_heads, decoder_blocks)

    def forward(self, image):
        check_input('Stripformer', image, self.img_channel)
        height, width = image.shape[-2:]
        padded = pad_to_multiple(image, self.size_multiple)
        x, skip_full, skip_half = self.encoder(padded - INPUT_SHIFT)
        for index in range(1, self.num_blocks + 1):
            x = getattr(self, f'Trans_block_{index}')(x)
        # The authors add the shifted input and shift back: the same as adding the input.
        return crop_to_scale(self.decoder(x, skip_full, skip_half) + padded, height, width)
