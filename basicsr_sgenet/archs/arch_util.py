"""What the plugin's archs share: padding any input to the size grid an arch computes on.

Every arch here accepts any H x W: it pads inside ``forward`` and crops its outputs back,
so callers (validation, the deblur CLI, tiling) never pad for it.
"""
import torch


def check_input(arch_name, image, channels):
    """ValueError, naming the arch, unless ``image`` is (N, channels, H, W) with H, W >= 1."""
    if image.dim() != 4 or image.shape[1] != channels or image.shape[2] < 1 or image.shape[3] < 1:
        raise ValueError(f'{arch_name} expects an input of shape (N, {channels}, H, W) with H, W >= 1, '
                         f'got {tuple(image.shape)}')


def pad_to_multiple(image, multiple):
    """Pad bottom and right to a multiple of ``multiple``, reflecting where the image is
    large enough (reflection needs pad < size) and replicating otherwise.

    Padding only at the bottom and right keeps the top-left ``H // f x W // f`` of every
    pooled level identical to pooling the unpadded image, so multi-scale outputs crop back
    to exactly the size of the average-pooled ground truth.

    The padding is built from tensor operations on the input's size, with no Python
    branch on it while tracing (the reflect/replicate choice is a ``torch.where``, a size
    that needs no padding appends empty strips): an exported graph (ONNX, ``torch.export``)
    then pads correctly at every input size, not only at the size it was traced with.
    Outside tracing and compiling, an input that needs no padding is returned as it is. The values
    are the same as ``F.pad``'s reflect/replicate modes, bit for bit.
    """
    height, width = image.shape[-2:]
    graph = torch.jit.is_tracing() or torch.compiler.is_compiling()  # must keep padding for other sizes
    if multiple == 1 or (not graph and height % multiple == 0 and width % multiple == 0):
        return image
    rows_reflected, rows_replicated = _padding_indices(height, multiple, image.device)
    cols_reflected, cols_replicated = _padding_indices(width, multiple, image.device)
    # Reflect only if it works along both axes (an index < 0 means the pad reaches past
    # the mirrored image); the zero keeps min() defined when nothing is padded.
    reflect = torch.cat([rows_reflected, cols_reflected, rows_reflected.new_zeros(1)]).min() >= 0
    rows = torch.where(reflect, rows_reflected, rows_replicated)
    cols = torch.where(reflect, cols_reflected, cols_replicated)
    image = torch.cat([image, image.index_select(-2, rows)], dim=-2)
    return torch.cat([image, image.index_select(-1, cols)], dim=-1)


def _padding_indices(size, multiple, device):
    """Source positions of the padded positions ``size .. padded size - 1`` along one
    axis: (reflected, replicated). Reflection mirrors about the last pixel (``F.pad``'s
    'reflect', edge not repeated); replication repeats the last pixel."""
    positions = torch.arange(size, size + (-size % multiple), device=device)
    last = size - 1
    return last - (positions - last).abs(), positions.clamp(max=last)


def crop_to_scale(image, height, width, factor=1):
    """The top-left ``(height // factor, width // factor)`` of a padded output: the size of
    ``F.avg_pool2d(gt, factor)`` for a ground truth of ``height x width``."""
    return image[..., :height // factor, :width // factor]


# Training-mode outputs of the plugin's archs are a dict of images with the restored one
# under this key (SGENet: 'final', 'stage2_cem1', ..., 'sam', ...); eval mode returns the
# restored image alone. A training dict may also hold scalar (0-dim) regularisation terms
# computed from the weights (MLWNet: its wavelet filter-bank loss under 'wavelet'): image
# losses skip them and the loss made for that network adds them.
FINAL_KEY = 'final'


def is_training_term(value):
    """Whether a training-dict entry is a scalar regularisation term rather than an image."""
    return torch.is_tensor(value) and value.dim() == 0


def training_images(output):
    """The images of a network's training output, by key: a dict without its scalar
    terms, or ``{'final': output}`` for a network that returns one image."""
    if isinstance(output, dict):
        return {key: value for key, value in output.items() if not is_training_term(value)}
    return {FINAL_KEY: output}


def final_image(output):
    """The restored image from a network's output: the tensor itself, the ``'final'``
    entry of a dict, or the first item of a list/tuple (multi-stage nets put it first)."""
    if isinstance(output, dict):
        if FINAL_KEY not in output:
            raise ValueError(f'The network returned a dict without a "{FINAL_KEY}" image (keys: {list(output)}).')
        return output[FINAL_KEY]
    if isinstance(output, (list, tuple)):
        return output[0]
    return output
