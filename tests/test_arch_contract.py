"""What every registered deblurring arch promises the pipeline, whatever its design: eval
mode restores any H x W to the same size (padding inside, as the authors' test scripts
pad outside), and a wrong input shape is a ValueError naming the expected layout."""
import pytest
import torch
import torch.nn.functional as F

from basicsr_sgenet.inference.network import size_multiple
from tiny_archs import TINY_ARCHS, tiny_network

ARCHS = sorted(TINY_ARCHS)


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('size', [(37, 29), (5, 7), (1, 1), (64, 48)])
def test_eval_returns_the_image_at_input_size(arch, size):
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = tiny_network(arch)(image)
    assert isinstance(out, torch.Tensor) and out.shape == image.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize('arch', ARCHS)
def test_unpadded_input_equals_the_reflect_padded_run_cropped(arch):
    # The authors' test scripts reflect-pad at the bottom and right to the multiple their
    # network needs and crop the result; the archs do the same inside forward.
    net = tiny_network(arch)
    image = torch.rand(1, 3, 37, 29)
    multiple = size_multiple(net)  # 40x32 for a multiple of 4 or 8, 48x32 for 16 (MLWNet), 64x32 for 32 (FFTformer)
    with torch.no_grad():
        padded = net(F.pad(image, (0, -29 % multiple, 0, -37 % multiple), mode='reflect'))
        torch.testing.assert_close(net(image), padded[..., :37, :29])


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('shape', [(1, 1, 16, 16), (1, 4, 16, 16), (3, 16, 16), (1, 3, 0, 16)])
def test_wrong_input_shape_raises_value_error(arch, shape):
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        tiny_network(arch)(torch.rand(*shape))
