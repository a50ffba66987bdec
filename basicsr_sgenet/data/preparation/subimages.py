"""Cutting full frames into overlapping sub-images, as BasicSR's DIV2K recipe does.

Reading a 512x512 sub-image and cropping 256x256 from it is much cheaper than decoding a
720x1280 frame per training sample. With ``step <= crop_size - gt_size`` every gt_size
crop of the full frame still lies inside some sub-image, so no crop position is lost
(512/256 with 256 training crops satisfies this).
"""
from dataclasses import dataclass

from basicsr_sgenet.integration.errors import PreparationError


@dataclass(frozen=True)
class SubimageGrid:
    """Sub-image size, stride, and the largest leftover border that is dropped rather
    than covered by an extra sub-image flush with the far edge (BasicSR's thresh_size)."""
    crop_size: int
    step: int
    thresh_size: int = 0

    def __post_init__(self):
        if self.crop_size < 1:
            raise PreparationError(f'crop size must be positive, got {self.crop_size}.')
        if not 1 <= self.step <= self.crop_size:
            raise PreparationError(f'step must be between 1 and the crop size ({self.crop_size}), got {self.step}; '
                                   'a larger step would skip pixels.')
        if not 0 <= self.thresh_size < self.crop_size:
            raise PreparationError(f'thresh size must be between 0 and the crop size - 1, got {self.thresh_size}.')

    def origins(self, length):
        """Start offsets along one side of ``length`` pixels (length >= crop_size)."""
        starts = list(range(0, length - self.crop_size + 1, self.step))
        if length - (starts[-1] + self.crop_size) > self.thresh_size:
            starts.append(length - self.crop_size)
        return starts

    def boxes(self, height, width):
        """(top, left) of each sub-image, row by row."""
        return [(top, left) for top in self.origins(height) for left in self.origins(width)]

    def too_small(self, shape):
        return shape[0] < self.crop_size or shape[1] < self.crop_size


def subimage_key(frame_key, index, count):
    """``<frame>_s001`` ...: 1-based, at least 3 digits, sorted like the grid."""
    return f'{frame_key}_s{index + 1:0{max(3, len(str(count)))}d}'
