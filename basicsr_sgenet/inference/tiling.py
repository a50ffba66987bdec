"""Run an image-to-image network on overlapping tiles and blend them into one image.

Why tiles: a full-resolution forward pass of a multi-stage network needs memory in
proportion to the image area; tiles bound it by the tile area.

How the blend works, along each axis, for every edge a tile shares with a neighbour
(edges on the image border are kept as they are):

    |<------------- overlap ------------>|
    | margin |   cosine cross-fade   | margin |
      weight 0   rises from 0 to 1      weight 1 beyond

The outer quarter of the overlap (the *margin*) is discarded: those pixels saw zero
padding instead of their real neighbours, so they are the least accurate. The middle
half is cross-faded with a raised-cosine ramp, so any remaining difference between the
tiles fades in smoothly instead of leaving a seam. Each output pixel is the
weight-normalised sum over the tiles covering it.

When the result equals the untiled one: for a purely local network whose receptive
field reaches R pixels, and R <= margin = overlap // 4, every kept pixel saw exactly
the context it would have seen in the full image, so tiled and untiled outputs agree up
to float rounding. That also needs tile origins on the network's size grid (a network
that downsamples by 4 sees different pooling cells if a tile starts at an odd
offset): tile and overlap must be multiples of the network's size multiple, and the
last tile along each axis is stretched (by less than one multiple) to end on the
image border instead of being shifted off the grid.

Networks with global operations (SGENet's CSAM pools each feature map over the whole
image) cannot match exactly: their attention weights are computed per tile. See
``docs/evaluation.md`` for measured differences.
"""
import math

import torch

from basicsr_sgenet.integration.errors import InferenceError

# Fraction of the overlap discarded at each shared tile edge (see the module docstring).
MARGIN_FRACTION = 0.25
# Below this overlap, seams between tiles can be seen (see tile_overlap_warning).
SMALL_OVERLAP = 16


def check_tile_settings(tile, overlap, multiple=1):
    """Raise InferenceError, naming the argument, unless ``tile``/``overlap`` can tile
    images for a network that needs sizes and offsets on a ``multiple`` grid."""
    if tile < 1:
        raise InferenceError(f'--tile must be a positive number of pixels, got {tile}')
    if overlap < 0:
        raise InferenceError(f'--tile-overlap must be >= 0, got {overlap}')
    if tile <= overlap:
        raise InferenceError(f'--tile ({tile}) must be larger than --tile-overlap ({overlap}): '
                             'otherwise consecutive tiles would not advance')
    for name, value in (('--tile', tile), ('--tile-overlap', overlap)):
        if value % multiple:
            raise InferenceError(f'{name} {value} is not a multiple of {multiple}, which this network needs so that '
                                 f'tiles stay on its downsampling grid (e.g. {name} '
                                 f'{max(multiple, value - value % multiple)})')


def tile_overlap_warning(overlap):
    """A warning for an overlap too small to hide the seams between tiles, or None.

    Measured on a small random-weight SGENet (tile 128): at most 6 8-bit levels of
    difference from the untiled result at overlap 0, 2.5 at 4, 0.6 at 8, 0.13 at 16;
    trained networks, with wider receptive fields, differ more."""
    if overlap == 0:
        return ('--tile-overlap 0 puts tiles edge to edge, so their seams will show; use --tile-overlap 64 '
                '(the default)')
    if overlap < SMALL_OVERLAP:
        return (f'--tile-overlap {overlap} blends tiles over only {overlap - 2 * int(overlap * MARGIN_FRACTION)} '
                'pixels, so seams may show; use --tile-overlap 64 (the default)')
    return None


def tile_spans(length, tile, overlap, multiple=1):
    """``[(start, end), ...]`` covering ``range(length)`` with tiles of ``tile`` pixels.

    Starts are multiples of ``multiple``; consecutive tiles overlap by at least
    ``overlap``; the last tile ends at ``length`` and is up to ``multiple - 1`` pixels
    longer than ``tile``. A length that fits in one tile gives one span.
    """
    if length <= tile:
        return [(0, length)]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    last_start = (length - tile) // multiple * multiple
    if last_start > starts[-1]:
        starts.append(last_start)
    return [(start, start + tile) for start in starts[:-1]] + [(starts[-1], length)]


def edge_ramp(size, fade_start, fade_end, overlap):
    """1-D blending weights (float32 tensor of ``size``) for a tile whose start and/or
    end edge is shared with a neighbour (``fade_start``/``fade_end``)."""
    weights = torch.ones(size, dtype=torch.float32)
    margin = int(overlap * MARGIN_FRACTION)
    fade = overlap - 2 * margin
    if overlap == 0:
        return weights
    distance = torch.arange(size, dtype=torch.float32)
    ramp_positions = (distance - margin + 0.5) / max(fade, 1)  # +0.5: the first kept pixel gets weight > 0
    ramp = 0.5 - 0.5 * torch.cos(math.pi * ramp_positions.clamp(0, 1))
    ramp[distance < margin] = 0
    if fade_start:
        weights = weights * ramp
    if fade_end:
        weights = weights * ramp.flip(0)
    return weights


def tiled_forward(network_fn, image, tile, overlap, multiple=1, on_tile=None):
    """Apply ``network_fn`` to ``image`` ((1, C, H, W), float, any device) tile by tile.

    ``network_fn`` maps a (1, C, h, w) tile to a (1, C', h, w) output; it is responsible
    for moving the tile to its device. The blended result is float32 on the CPU, so the
    full-size accumulators never take device memory. ``on_tile`` (optional) is called
    after each tile, e.g. to advance a progress bar.
    """
    check_tile_settings(tile, overlap, multiple)
    height, width = image.shape[-2:]
    rows = tile_spans(height, tile, overlap, multiple)
    cols = tile_spans(width, tile, overlap, multiple)
    result = None
    weight_sum = torch.zeros(1, 1, height, width, dtype=torch.float32)
    for row_index, (top, bottom) in enumerate(rows):
        row_weights = edge_ramp(bottom - top, row_index > 0, row_index < len(rows) - 1, overlap)
        for col_index, (left, right) in enumerate(cols):
            col_weights = edge_ramp(right - left, col_index > 0, col_index < len(cols) - 1, overlap)
            weights = torch.outer(row_weights, col_weights)[None, None]
            output = network_fn(image[..., top:bottom, left:right])
            if output.shape[-2:] != (bottom - top, right - left):
                raise InferenceError(f'The network changed the tile size from {(bottom - top, right - left)} to '
                                     f'{tuple(output.shape[-2:])}; tiling needs a 1x (same-size) network')
            output = output.detach().to('cpu', torch.float32)
            if result is None:
                result = torch.zeros(1, output.shape[1], height, width, dtype=torch.float32)
            result[..., top:bottom, left:right] += output * weights
            weight_sum[..., top:bottom, left:right] += weights
            if on_tile is not None:
                on_tile()
    # Every pixel lies in the non-discarded core of some tile (cores of neighbouring
    # tiles touch because the real overlap is >= 2 * margin), so weight_sum > 0.
    return result / weight_sum


def count_tiles(height, width, tile, overlap, multiple=1):
    """How many tiles ``tiled_forward`` runs for a ``height x width`` image."""
    return len(tile_spans(height, tile, overlap, multiple)) * len(tile_spans(width, tile, overlap, multiple))
