"""The deblur CLI tiles images above a network's whole-image pixel budget unless --tile
says otherwise, and a kernel's 32-bit index limit is one line suggesting --tile."""
import argparse

import numpy as np
import pytest

from basicsr_sgenet import deblur
from basicsr_sgenet.inference.image_io import LoadedImage
from basicsr_sgenet.inference.tiling import (AUTO_TILE, DEFAULT_PIXEL_BUDGET, tile_for_image,
                                              whole_image_pixel_budget)
from basicsr_sgenet.integration.errors import InferenceError


def test_budget_is_one_4k_frame_and_lower_for_restormer():
    assert whole_image_pixel_budget('SGENet') == whole_image_pixel_budget(None) == DEFAULT_PIXEL_BUDGET == 3840 * 2160
    assert whole_image_pixel_budget('Restormer') == 4_000_000  # fails above ~4.2 MP
    assert whole_image_pixel_budget('NoSuchArch') == DEFAULT_PIXEL_BUDGET


@pytest.mark.parametrize('size, tile, budget, expected', [
    ((2160, 3840), None, None, 0), ((2161, 3840), None, None, AUTO_TILE), ((2000, 2100), None, 4_000_000, AUTO_TILE),
    ((4000, 6000), 0, None, 0), ((100, 100), 256, None, 256)])
def test_tile_for_image(size, tile, budget, expected):
    assert tile_for_image(*size, tile, budget) == expected


class RecordingRestorer:
    device = 'cpu'

    def __init__(self, error=None):
        self.tiles, self.error = [], error

    def restore(self, rgb, tile, overlap, multiple, on_tile):
        self.tiles.append(tile)
        if self.error:
            raise self.error
        return rgb


def image_of(height, width):
    return LoadedImage(path='big.png', rgb=np.zeros((height, width, 3), np.float32), dtype=np.dtype(np.uint8),
                       grayscale=False, alpha=None)


def test_an_image_above_the_budget_runs_in_tiles_and_says_so(capsys):
    restorer = RecordingRestorer()
    args = argparse.Namespace(tile=None, tile_overlap=64, quiet=False, pixel_budget=1000)
    deblur.restore_image(restorer, image_of(40, 30), args, 1)
    deblur.restore_image(restorer, image_of(20, 30), args, 1)
    assert restorer.tiles == [AUTO_TILE, 0]
    assert 'above the whole-image budget of 0.0 MP: deblurring it in 512-pixel tiles (--tile 0: whole)' in \
        capsys.readouterr().err


def test_a_32_bit_index_failure_is_one_line_suggesting_tiles():
    error = RuntimeError('upsample_bilinear2d: input tensor must fit into 32-bit index math\nmore text')
    args = argparse.Namespace(tile=0, tile_overlap=64, quiet=True, pixel_budget=DEFAULT_PIXEL_BUDGET)
    with pytest.raises(InferenceError, match=r'big.png \(60x50\) is too large for this network the whole image at '
                                             r'once \(upsample_bilinear2d: .*32-bit index math\); use --tile 512$'):
        deblur.restore_image(RecordingRestorer(error), image_of(60, 50), args, 1)
