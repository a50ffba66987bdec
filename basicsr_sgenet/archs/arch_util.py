"""What the plugin's archs share: padding any input to the size grid an arch computes on.

Every arch here accepts any H x W: it pads inside ``forward`` and crops its outputs back,
so callers (validation, the deblur CLI, tiling) never pad for it.
"""
import torch.nn.functional as F


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
    """
    height, width = image.shape[-2:]
    pad_height, pad_width = -height % multiple, -width % multiple
    if pad_height == 0 and pad_width == 0:
        return image
    mode = 'reflect' if pad_height < height and pad_width < width else 'replicate'
    return F.pad(image, (0, pad_width, 0, pad_height), mode=mode)


def crop_to_scale(image, height, width, factor=1):
    """The top-left ``(height // factor, width // factor)`` of a padded output: the size of
    ``F.avg_pool2d(gt, factor)`` for a ground truth of ``height x width``."""
    return image[..., :height // factor, :width // factor]


# Training-mode outputs of the plugin's archs are a dict of images with the restored one
# under this key (SGENet: 'final', 'stage2_cem1', ..., 'sam', ...); eval mode returns the
# restored image alone.
FINAL_KEY = 'final'


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
