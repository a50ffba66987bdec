"""MultiScaleCharbonnierEdgeLoss against explicit loop computations, its output selection,
weights, registration and errors."""
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from basicsr.losses import build_loss
from basicsr.utils.registry import ARCH_REGISTRY
from basicsr_sgenet.losses.sgenet_loss import MultiScaleCharbonnierEdgeLoss

TAPS = [0.05, 0.25, 0.4, 0.25, 0.05]
ALL_KEYS = ['final', 'stage2_cem1', 'stage2_cem2', 'stage2_cem3', 'sam', 'stage1_cem1', 'stage1_cem2',
            'stage1_cem3']
FACTORS = {'final': 1, 'stage2_cem1': 1, 'stage2_cem2': 2, 'stage2_cem3': 4, 'sam': 1, 'stage1_cem1': 1,
           'stage1_cem2': 2, 'stage1_cem3': 4}


# ----- reference computations with explicit loops (no torch ops) -----------------------

def loop_blur(image):
    """5x5 Gaussian of a (C, H, W) array, borders replicated by clamping indices."""
    channels, height, width = image.shape
    out = np.zeros_like(image)
    for c in range(channels):
        for i in range(height):
            for j in range(width):
                for a in range(-2, 3):
                    for b in range(-2, 3):
                        row = min(max(i + a, 0), height - 1)
                        col = min(max(j + b, 0), width - 1)
                        out[c, i, j] += TAPS[a + 2] * TAPS[b + 2] * image[c, row, col]
    return out


def loop_laplacian(image):
    blurred = loop_blur(image)
    expanded = np.zeros_like(image)
    expanded[:, ::2, ::2] = 4 * blurred[:, ::2, ::2]
    return image - loop_blur(expanded)


def loop_charbonnier(x, y, eps):
    diffs = (x - y).ravel()
    return sum(math.sqrt(d * d + eps * eps) for d in diffs) / diffs.size


def loop_image_loss(pred, target, eps=1e-3, edge_weight=0.05):
    """For (1, C, H, W) tensors."""
    x, y = pred[0].double().numpy(), target[0].double().numpy()
    return loop_charbonnier(x, y, eps) + edge_weight * loop_charbonnier(loop_laplacian(x), loop_laplacian(y), eps)


def fake_outputs(gt, keys=ALL_KEYS, seed=0):
    generator = torch.Generator().manual_seed(seed)
    outputs = {}
    for key in keys:
        target = F.avg_pool2d(gt, FACTORS[key]) if FACTORS[key] > 1 else gt
        outputs[key] = target + 0.1 * torch.randn(target.shape, generator=generator, dtype=gt.dtype)
    return outputs


@pytest.fixture
def tiny_pair():
    """1x3x4x4 with known values: a ramp image and a checkerboard-perturbed copy."""
    gt = torch.arange(48, dtype=torch.float64).reshape(1, 3, 4, 4) / 47
    checker = torch.tensor([[1., -1.] * 2, [-1., 1.] * 2] * 2, dtype=torch.float64)
    pred = gt + 0.2 * checker * torch.tensor([1., 0.5, -1.], dtype=torch.float64).view(1, 3, 1, 1)
    return pred, gt


# ----- values -------------------------------------------------------------------------

def test_single_image_matches_loop_computation(tiny_pair):
    pred, gt = tiny_pair
    loss = MultiScaleCharbonnierEdgeLoss()(pred, gt)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(loop_image_loss(pred, gt), rel=1e-12)


def test_laplacian_band_matches_loops_and_is_nonzero_for_checkerboard(tiny_pair):
    pred, _ = tiny_pair
    band = MultiScaleCharbonnierEdgeLoss().laplacian_band(pred)
    expected = loop_laplacian(pred[0].numpy())
    np.testing.assert_allclose(band[0].numpy(), expected, rtol=0, atol=1e-12)
    assert np.abs(expected).max() > 0.05


def test_loss_weight_eps_and_edge_weight_are_applied(tiny_pair):
    pred, gt = tiny_pair
    loss = MultiScaleCharbonnierEdgeLoss(loss_weight=2.0, eps=0.1, edge_weight=0.5)(pred, gt)
    assert loss.item() == pytest.approx(2.0 * loop_image_loss(pred, gt, eps=0.1, edge_weight=0.5), rel=1e-12)
    no_edge = MultiScaleCharbonnierEdgeLoss(edge_weight=0)(pred, gt)
    assert no_edge.item() == pytest.approx(loop_charbonnier(pred[0].numpy(), gt[0].numpy(), 1e-3), rel=1e-12)


def test_multiscale_dict_compares_each_output_with_pooled_ground_truth():
    gt = torch.rand(1, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    outputs = fake_outputs(gt)
    terms = MultiScaleCharbonnierEdgeLoss().terms(outputs, gt)
    assert list(terms) == ALL_KEYS
    for key, image in outputs.items():
        # Pooling by hand: mean over each f x f block.
        f = FACTORS[key]
        pooled = gt.reshape(1, 3, 8 // f, f, 8 // f, f).mean(dim=(3, 5))
        assert terms[key].item() == pytest.approx(loop_image_loss(image, pooled), rel=1e-12), key
    total = MultiScaleCharbonnierEdgeLoss()(outputs, gt)
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-12)


def test_identical_images_cost_exactly_eps_per_term():
    gt = torch.rand(2, 3, 16, 16)
    outputs = {key: (F.avg_pool2d(gt, f) if f > 1 else gt.clone()) for key, f in FACTORS.items()}
    loss_fn = MultiScaleCharbonnierEdgeLoss(eps=1e-3, edge_weight=0.05)
    for key, term in loss_fn.terms(outputs, gt).items():
        torch.testing.assert_close(term, torch.tensor(1e-3 * 1.05), rtol=1e-6, atol=0, msg=key)
    torch.testing.assert_close(loss_fn(outputs, gt), torch.tensor(len(FACTORS) * 1e-3 * 1.05), rtol=1e-6, atol=0)
    # Without the edge term each term is eps itself.
    for term in MultiScaleCharbonnierEdgeLoss(edge_weight=0).terms(outputs, gt).values():
        torch.testing.assert_close(term, torch.tensor(1e-3), rtol=1e-6, atol=0)


def test_gradient_flows_to_every_supervised_output():
    gt = torch.rand(1, 3, 16, 16)
    outputs = {key: value.requires_grad_() for key, value in fake_outputs(gt).items()}
    MultiScaleCharbonnierEdgeLoss()(outputs, gt).backward()
    for key, value in outputs.items():
        assert value.grad is not None and value.grad.abs().sum() > 0, key


def test_low_precision_inputs_are_computed_in_fp32_even_under_autocast():
    gt = torch.rand(1, 3, 8, 8)
    pred = (gt + 0.05).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = MultiScaleCharbonnierEdgeLoss()(pred, gt)
    assert loss.dtype == torch.float32
    reference = MultiScaleCharbonnierEdgeLoss()(pred.float(), gt)
    torch.testing.assert_close(loss, reference)


def test_ground_truth_not_divisible_by_factor_uses_floor_like_avg_pool():
    gt = torch.rand(1, 3, 10, 10)
    outputs = {'final': gt.clone(), 'stage2_cem3': F.avg_pool2d(gt, 4)}  # 2x2
    terms = MultiScaleCharbonnierEdgeLoss(edge_weight=0).terms(outputs, gt)
    torch.testing.assert_close(terms['stage2_cem3'], torch.tensor(1e-3), rtol=1e-6, atol=0)


# ----- which outputs are supervised, and how much --------------------------------------

def test_full_deep_supervision_uses_every_output():
    gt = torch.rand(1, 3, 8, 8)
    assert list(MultiScaleCharbonnierEdgeLoss().terms(fake_outputs(gt), gt)) == ALL_KEYS


def test_strict_uses_only_stage2_scale_outputs():
    gt = torch.rand(1, 3, 8, 8)
    outputs = fake_outputs(gt)
    strict = MultiScaleCharbonnierEdgeLoss(strict=True)
    assert list(strict.terms(outputs, gt)) == ['final', 'stage2_cem2', 'stage2_cem3']
    expected = sum(MultiScaleCharbonnierEdgeLoss().terms(outputs, gt)[k] for k in ('final', 'stage2_cem2',
                                                                                  'stage2_cem3'))
    torch.testing.assert_close(strict(outputs, gt), expected)


def test_strict_without_cem_outputs_supervises_final_only():
    gt = torch.rand(1, 3, 8, 8)
    outputs = fake_outputs(gt, keys=['final', 'sam'])
    assert list(MultiScaleCharbonnierEdgeLoss(strict=True).terms(outputs, gt)) == ['final']
    assert list(MultiScaleCharbonnierEdgeLoss().terms(outputs, gt)) == ['final', 'sam']


def test_output_weights_override_the_default_of_one():
    gt = torch.rand(1, 3, 8, 8)
    outputs = fake_outputs(gt)
    plain = MultiScaleCharbonnierEdgeLoss().terms(outputs, gt)
    weights = {'sam': 0.5, 'stage1_cem3': 0.0, 'final': 2}
    weighted = MultiScaleCharbonnierEdgeLoss(loss_weight=3.0, output_weights=weights).terms(outputs, gt)
    for key in ALL_KEYS:
        torch.testing.assert_close(weighted[key], 3.0 * weights.get(key, 1.0) * plain[key])


def test_plain_tensor_is_the_final_output():
    gt = torch.rand(1, 3, 8, 8)
    pred = gt + 0.1
    loss_fn = MultiScaleCharbonnierEdgeLoss(output_weights={'final': 2.0})
    assert list(loss_fn.terms(pred, gt)) == ['final']
    torch.testing.assert_close(loss_fn(pred, gt), 2.0 * MultiScaleCharbonnierEdgeLoss()({'final': pred}, gt))


def test_builds_through_basicsr_registry_and_keeps_state_dict_clean():
    loss_fn = build_loss({'type': 'MultiScaleCharbonnierEdgeLoss', 'loss_weight': 0.5, 'eps': 1e-2,
                          'edge_weight': 0.1, 'strict': True, 'output_weights': {'stage2_cem2': 0.25}})
    assert isinstance(loss_fn, MultiScaleCharbonnierEdgeLoss)
    assert (loss_fn.loss_weight, loss_fn.eps, loss_fn.edge_weight, loss_fn.strict) == (0.5, 1e-2, 0.1, True)
    assert loss_fn.output_weights == {'stage2_cem2': 0.25}
    assert loss_fn.state_dict() == {}
    assert [name for name, _ in loss_fn.named_buffers()] == ['gaussian_kernel']
    torch.testing.assert_close(loss_fn.gaussian_kernel.sum().item(), 1.0)


# ----- errors -------------------------------------------------------------------------

def test_unknown_output_weight_key_is_named_at_first_forward():
    gt = torch.rand(1, 3, 8, 8)
    loss_fn = MultiScaleCharbonnierEdgeLoss(output_weights={'stage3_cem1': 1.0, 'final': 1.0})
    with pytest.raises(ValueError, match='stage3_cem1'):
        loss_fn(fake_outputs(gt), gt)
    # A real output that strict mode does not supervise is an error too, not silently ignored.
    strict = MultiScaleCharbonnierEdgeLoss(strict=True, output_weights={'sam': 0.5})
    with pytest.raises(ValueError, match="'sam'.*strict=True"):
        strict(fake_outputs(gt), gt)


@pytest.mark.parametrize('kwargs, message', [
    ({'reduction': 'sum'}, 'reduction'),
    ({'reduction': 'none'}, 'reduction'),
    ({'eps': 0}, 'eps'),
    ({'edge_weight': -1}, 'edge_weight'),
    ({'output_weights': {'sam': -1}}, r"output_weights\['sam'\]"),
    ({'output_weights': {'sam': 'high'}}, r"output_weights\['sam'\]"),
    ({'output_weights': ['sam']}, 'output_weights'),
])
def test_bad_options_are_rejected_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiScaleCharbonnierEdgeLoss(**kwargs)


def test_mismatched_channels_name_the_output_and_shapes():
    gt = torch.rand(1, 3, 8, 8)
    outputs = {'final': gt.clone(), 'sam': torch.rand(1, 1, 8, 8)}
    with pytest.raises(ValueError, match=r"'sam' \(1, 1, 8, 8\).*\(1, 3, 8, 8\)"):
        MultiScaleCharbonnierEdgeLoss()(outputs, gt)


@pytest.mark.parametrize('size', [(4, 4), (16, 16), (6, 3), (5, 5), (0, 0)])
def test_scale_that_is_not_a_power_of_two_is_named(size):
    gt = torch.rand(1, 3, 12, 12)
    outputs = {'final': gt.clone(), 'stage2_cem2': torch.rand(1, 3, *size)}
    with pytest.raises(ValueError, match=rf"'stage2_cem2' is {size[0]}x{size[1]}.*12x12"):
        MultiScaleCharbonnierEdgeLoss()(outputs, gt)


def test_non_tensor_output_and_strict_without_any_stage2_key_are_named():
    gt = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="'aux'"):
        MultiScaleCharbonnierEdgeLoss()({'final': gt, 'aux': [gt]}, gt)
    with pytest.raises(ValueError, match=r"none of them \(keys: \['out'\]\)"):
        MultiScaleCharbonnierEdgeLoss(strict=True)({'out': gt}, gt)


# ----- with the real network ------------------------------------------------------------

@pytest.mark.skipif('SGENet' not in ARCH_REGISTRY, reason='basicsr_sgenet/archs/sgenet_arch.py not available yet')
@pytest.mark.parametrize('size', [(16, 16), (18, 22)])
def test_sgenet_outputs_are_matched_to_the_scales_the_arch_declares(size):
    from basicsr_sgenet.archs import sgenet_arch

    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('SGENet')(channels=[8, 12, 16], num_rdm=1).train()
    gt = torch.rand(1, 3, *size)
    outputs = net(gt + 0.05)
    loss_fn = MultiScaleCharbonnierEdgeLoss()
    assert list(loss_fn.terms(outputs, gt)) == list(sgenet_arch.OUTPUT_SCALE_FACTORS)
    for key, image in outputs.items():
        assert loss_fn.scale_factor(key, image, gt) == sgenet_arch.OUTPUT_SCALE_FACTORS[key], key
