"""SGENet architecture: registry, size, output contract, ablation switches, argument
checks, and numerics under channels_last and bf16 autocast. Forward passes run at
reduced width (channels 8, 12, 16) on inputs of at most 64x64."""
import os

import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_sgenet.archs.arch_util import pad_to_multiple
from basicsr_sgenet.archs.sgenet_arch import (OUTPUT_SCALE_FACTORS, PAPER_CHANNELS, SGENet, average_pyramid,
                                              output_scale_factors)
from basicsr_sgenet.archs.sgenet_blocks import CEM, CSAM, RDM, CrossStageSum, PlainSkipFusion
from basicsr_sgenet.tools.profiling import count_parameters
from conftest import REPO_ROOT, run_python

SMALL = [8, 12, 16]


def small_net(**options):
    torch.manual_seed(0)
    return build_network(dict(type='SGENet', channels=SMALL, **options))


def coarser_widths(channels):
    return list(channels[1:]) + [None]


# --- registry and size --------------------------------------------------------------


def test_builds_from_option_dict_like_basicsr():
    net = build_network({'type': 'SGENet', 'channels': SMALL, 'num_rdm': 1, 'rdm_dilations': [[2, 1]]})
    assert isinstance(net, SGENet)
    assert net.num_scales == 3 and net.size_multiple == 4


@pytest.mark.parametrize('options, inputs', [
    ({'type': 'RDM', 'channels': 8}, lambda: (torch.rand(1, 8, 9, 7), )),
    ({'type': 'RDM', 'channels': 8, 'dilations': [[1], [2, 3, 1]]}, lambda: (torch.rand(1, 8, 9, 7), )),
    ({'type': 'CEM', 'channels': 8}, lambda: (torch.rand(1, 8, 6, 4), torch.rand(1, 3, 6, 4))),
    ({'type': 'CEM', 'channels': 8, 'coarser_channels': 12},
     lambda: (torch.rand(1, 8, 6, 4), torch.rand(1, 3, 6, 4), torch.rand(1, 12, 3, 2))),
    ({'type': 'CSAM', 'channels': 16}, lambda: tuple(torch.rand(1, 16, 5, 5) for _ in range(3))),
    ({'type': 'CSAM', 'channels': 16, 'reduction': 4, 'project_stage1': False},
     lambda: tuple(torch.rand(1, 16, 5, 5) for _ in range(3))),
])
def test_blocks_build_by_name_and_keep_the_size(options, inputs):
    block = build_network(options)
    assert type(block).__name__ == options['type']
    args = inputs()
    out = block(*args)
    features = out[0] if isinstance(out, tuple) else out
    assert features.shape == args[0].shape
    if options['type'] == 'CEM':
        assert out[1].shape == args[1].shape  # the predicted image I_s, like B_s


def test_names_are_registered_once():
    for name in ('SGENet', 'RDM', 'CEM', 'CSAM'):
        assert name in ARCH_REGISTRY


def test_default_parameter_count_matches_the_paper_and_the_spec_split():
    net = SGENet()  # paper configuration; built, never run, at full width
    total = count_parameters(net)
    assert abs(total - 19.5e6) / 19.5e6 < 0.03

    rdms = sum(count_parameters(m) for m in net.modules() if isinstance(m, RDM))
    cems = sum(count_parameters(m) for m in net.modules() if isinstance(m, CEM))
    csams = sum(count_parameters(m) for m in net.modules() if isinstance(m, CSAM))
    # The reference design's split (docs/architecture.md): RDMs 15.97M, CEMs 2.94M, CSAMs 0.11M, rest 0.24M.
    assert round(rdms / 1e6, 2) == 15.97
    assert round(cems / 1e6, 2) == 2.94
    assert round(csams / 1e6, 2) == 0.11
    assert round((total - rdms - cems - csams) / 1e6, 2) == 0.24
    # Five 3x3 convs per RDM, 2 RDMs x (encoder, decoder) x 2 stages per level.
    assert rdms == 8 * sum(5 * 9 * c * c for c in PAPER_CHANNELS)


# --- output contract ----------------------------------------------------------------


def test_train_returns_every_output_at_the_size_of_the_pooled_ground_truth():
    net = small_net().train()
    gt = torch.rand(1, 3, 37, 53)
    outputs = net(torch.rand(1, 3, 37, 53))
    assert list(outputs) == list(OUTPUT_SCALE_FACTORS) == list(net.output_scale_factors)
    assert OUTPUT_SCALE_FACTORS['stage2_cem3'] == 4 and OUTPUT_SCALE_FACTORS['sam'] == 1
    for key, factor in OUTPUT_SCALE_FACTORS.items():
        target = gt if factor == 1 else F.avg_pool2d(gt, factor)
        assert outputs[key].shape == target.shape, key


def test_output_scale_factors_follow_the_configuration():
    assert SGENet.output_scales() == OUTPUT_SCALE_FACTORS
    assert output_scale_factors(use_cem=False) == {'final': 1, 'sam': 1}
    assert output_scale_factors(num_scales=2)['stage1_cem2'] == 2
    assert 'stage1_cem3' not in output_scale_factors(num_scales=2)


@pytest.mark.parametrize('size', [(1, 1), (3, 5), (2, 2), (4, 9), (64, 64)])
def test_any_size_including_tiny(size):
    net = small_net()
    image = torch.rand(1, 3, *size)
    outputs = net.train()(image)
    for key, factor in net.output_scale_factors.items():
        assert outputs[key].shape[-2:] == (size[0] // factor, size[1] // factor), key
    with torch.no_grad():
        assert net.eval()(image).shape == image.shape


def test_padding_reflects_when_possible_and_replicates_otherwise():
    image = torch.arange(15.).view(1, 1, 3, 5)
    reflected = pad_to_multiple(image, 4)
    assert reflected.shape[-2:] == (4, 8)
    assert torch.equal(reflected[..., 3, :5], image[..., 1, :])  # row 3 mirrors row 1
    assert torch.equal(reflected[..., :3, 5:], image[..., :3, [3, 2, 1]])
    replicated = pad_to_multiple(torch.ones(1, 1, 1, 2), 4)  # too small to reflect
    assert torch.equal(replicated, torch.ones(1, 1, 4, 4))
    assert pad_to_multiple(image, 1) is image


def test_blurred_pyramid_crops_equal_pooling_the_unpadded_image():
    # Why the outputs can be compared with F.avg_pool2d(gt, f): padding only at the
    # bottom and right leaves the top-left of every pooled level untouched.
    image = torch.rand(1, 3, 37, 53)
    pyramid = average_pyramid(pad_to_multiple(image, 4), 3)
    for level, factor in enumerate((1, 2, 4)):
        pooled = image if factor == 1 else F.avg_pool2d(image, factor)
        cropped = pyramid[level][..., :pooled.shape[-2], :pooled.shape[-1]]
        torch.testing.assert_close(cropped, pooled)


def test_zero_output_conv_makes_the_network_the_identity():
    net = small_net().eval()
    torch.nn.init.zeros_(net.output_conv.weight)
    image = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        assert torch.equal(net(image), image)


def test_every_parameter_gets_a_gradient_in_training():
    # Unused parameters would break DistributedDataParallel without find_unused_parameters.
    net = small_net(num_rdm=1).train()
    outputs = net(torch.rand(1, 3, 16, 20))
    sum(out.mean() for out in outputs.values()).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing


# --- ablation switches --------------------------------------------------------------


def test_without_cem_drops_exactly_the_cem_parameters_and_images():
    full, plain = small_net(), small_net(use_cem=False)
    per_stage = sum(
        count_parameters(CEM(c, coarse)) - count_parameters(PlainSkipFusion(c, coarse))
        for c, coarse in zip(SMALL, coarser_widths(SMALL)))
    assert count_parameters(full) - count_parameters(plain) == 2 * per_stage
    outputs = plain.train()(torch.rand(1, 3, 21, 18))
    assert set(outputs) == {'final', 'sam'}
    assert all(out.shape == (1, 3, 21, 18) for out in outputs.values())


@pytest.mark.parametrize('project', [True, False])
def test_without_csam_drops_exactly_the_selection_parameters(project):
    full = small_net(csam_project_stage1=project)
    summed = small_net(use_csam=False, csam_project_stage1=project)
    expected = sum(
        count_parameters(CSAM(c, 8, project)) - count_parameters(CrossStageSum(c, project)) for c in SMALL)
    assert count_parameters(full) - count_parameters(summed) == expected
    with torch.no_grad():
        assert summed.eval()(torch.rand(1, 3, 12, 12)).shape == (1, 3, 12, 12)


def test_stage1_projections_are_the_only_difference_of_csam_project_stage1():
    difference = count_parameters(small_net()) - count_parameters(small_net(csam_project_stage1=False))
    assert difference == sum(2 * c * c for c in SMALL)


def test_more_scales_and_rdms_and_grayscale():
    net = build_network(dict(type='SGENet', in_channels=1, channels=[4, 6, 8, 10], num_rdm=1,
                                     csam_reduction=4))
    outputs = net.train()(torch.rand(1, 1, 19, 23))
    assert outputs['stage1_cem4'].shape == (1, 1, 19 // 8, 23 // 8)


# --- argument and input checks ------------------------------------------------------


@pytest.mark.parametrize('options, argument', [
    ({'channels': [96]}, 'channels'),
    ({'channels': [8, 0, 16]}, 'channels'),
    ({'channels': [8, 12.5]}, 'channels'),
    ({'channels': '96,120'}, 'channels'),
    ({'num_rdm': 0}, 'num_rdm'),
    ({'num_rdm': 1.5}, 'num_rdm'),
    ({'rdm_dilations': []}, 'rdm_dilations'),
    ({'rdm_dilations': [[]]}, 'rdm_dilations'),
    ({'rdm_dilations': [2, 1]}, 'rdm_dilations'),
    ({'rdm_dilations': [[2, 0]]}, 'rdm_dilations'),
    ({'use_cem': 'false'}, 'use_cem'),
    ({'use_csam': 0}, 'use_csam'),
    ({'csam_project_stage1': None}, 'csam_project_stage1'),
    ({'csam_reduction': 0}, 'csam_reduction'),
    ({'csam_reduction': 9}, 'csam_reduction'),  # more than the smallest width, 8
    ({'in_channels': 0}, 'in_channels'),
    ({'chanels': [8, 12]}, 'chanels'),  # misspelt: unknown argument
])
def test_bad_arguments_raise_value_error_naming_them(options, argument):
    with pytest.raises(ValueError, match=argument):
        build_network(dict(type='SGENet', **{'channels': [8, 12, 16], **options}))


# --- numerics -----------------------------------------------------------------------


def test_channels_last_and_bf16_autocast_match_fp32():
    net = small_net().eval()
    image = torch.rand(2, 3, 24, 28)
    with torch.no_grad():
        reference = net(image)
        channels_last = net(image.to(memory_format=torch.channels_last))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf16 = net(image.to(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last, reference, rtol=1e-4, atol=1e-5)
    assert torch.isfinite(bf16).all()
    assert (bf16.float() - reference).abs().max() < 0.05


def test_bf16_autocast_training_outputs_are_finite():
    net = small_net().train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outputs = net(torch.rand(1, 3, 20, 20).to(memory_format=torch.channels_last))
    assert all(torch.isfinite(out).all() for out in outputs.values())


# --- model summary script -----------------------------------------------------------


def test_model_summary_counts_on_the_meta_device():
    result = run_python([os.path.join(REPO_ROOT, 'scripts', 'model_summary.py'), '--channels', '8', '12', '16',
                         '--sizes', '32x48', '7x9'])
    assert result.returncode == 0, result.stderr
    assert 'warning' not in result.stdout
    assert '32x48:' in result.stdout and '7x9:' in result.stdout
    assert f'{count_parameters(small_net()) / 1e6:.4f}' in result.stdout


def test_traces_as_one_graph_for_torch_compile():
    # Dynamo tracing only (the 'eager' backend): Inductor's CPU code generation takes
    # minutes here, the tracing seconds; fullgraph=True fails on any graph break.
    net = small_net(num_rdm=1).eval()
    image = torch.rand(1, 3, 13, 10)
    with torch.no_grad():
        reference = net(image)
        compiled = torch.compile(net, backend='eager', fullgraph=True)
        torch.testing.assert_close(compiled(image), reference)
    torch._dynamo.reset()


def test_cem_with_every_unit_switched_off_still_passes_features_and_gradient():
    """Large Adam steps can push every unit of CEM's relu(merge(X)) negative. With the
    post-activation skip the level then output exactly zero and never recovered (SGENet
    silently returned its input); the pre-activation skip keeps signal and gradient."""
    cem = CEM(channels=4, coarser_channels=None, image_channels=3)
    with torch.no_grad():
        cem.merge.weight.fill_(-0.1)  # positive input -> merge output negative everywhere
    skip = torch.rand(1, 4, 8, 8) + 0.1
    features, _ = cem(skip, torch.rand(1, 3, 8, 8))
    assert torch.all(torch.relu(cem.merge(skip)) == 0), 'the set-up must switch every unit off'
    assert features.abs().sum() > 0
    features.sum().backward()
    assert cem.merge.weight.grad.abs().sum() > 0


def test_post_activation_cem_skip_dies_where_the_pre_activation_one_does_not():
    """The same dead-unit set-up as above with the reference design's skip: the level
    outputs exactly zero and gets no gradient, so training can never revive it."""
    cem = CEM(channels=4, coarser_channels=None, image_channels=3, skip='post_activation')
    with torch.no_grad():
        cem.merge.weight.fill_(-0.1)
    features, _ = cem(torch.rand(1, 4, 8, 8) + 0.1, torch.rand(1, 3, 8, 8))
    assert torch.all(features == 0)
    features.sum().backward()
    assert cem.merge.weight.grad.abs().sum() == 0


@pytest.mark.parametrize('cem_skip', ['pre_activation', 'post_activation'])
def test_each_cem_skip_builds_and_trains(cem_skip):
    torch.manual_seed(0)
    net = build_network(dict(type='SGENet', channels=SMALL, num_rdm=1, cem_skip=cem_skip)).train()
    assert all(cem.skip == cem_skip for cem in net.modules() if isinstance(cem, CEM))
    sharp = F.interpolate(torch.rand(2, 3, 4, 4), size=(16, 16), mode='bicubic', align_corners=False)
    blurred = F.avg_pool2d(F.pad(sharp, (1, 1, 1, 1), mode='replicate'), 3, stride=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.l1_loss(net(blurred)['final'], sharp)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_unknown_cem_skip_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match='cem_skip must be one of pre_activation, post_activation'):
        SGENet(channels=SMALL, cem_skip='after_relu')
