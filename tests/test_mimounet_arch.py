"""MIMO-UNet and MIMO-UNet+: registry, official state-dict fingerprints, output contract,
argument checks. Forward passes run at reduced width (base_channel 8) on inputs of at
most 64x64; the full-size models are only built on the meta device."""
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from fingerprints import fingerprint_differences, load_fingerprint

from basicsr_sgenet.archs.mimounet_arch import MIMOUNet, MIMOUNetPlus
from basicsr_sgenet.tools.profiling import count_parameters

ARCHS = ['MIMOUNet', 'MIMOUNetPlus']


def small_net(arch='MIMOUNet', **options):
    torch.manual_seed(0)
    return build_network(dict(type=arch, **{'num_res': 1, 'base_channel': 8, **options}))


@pytest.mark.parametrize('arch, cls', [('MIMOUNet', MIMOUNet), ('MIMOUNetPlus', MIMOUNetPlus)])
def test_builds_by_name(arch, cls):
    net = small_net(arch)
    assert type(net) is cls
    assert net.size_multiple == 4
    assert list(net.output_scale_factors.items()) == [('final', 1), ('scale2', 2), ('scale3', 4)]


@pytest.mark.parametrize('arch, num_res', [('MIMOUNet', 8), ('MIMOUNetPlus', 20)])
def test_default_state_dict_is_the_official_one(arch, num_res):
    fingerprint = load_fingerprint(arch)
    with torch.device('meta'):
        net = build_network({'type': arch})
    assert fingerprint_differences(net, fingerprint) == []
    assert count_parameters(net) == fingerprint['num_params']
    assert len(net.Encoder[0].layers) == num_res


def test_plus_differs_only_in_depth_and_dropout():
    with torch.device('meta'):
        plus_at_8 = MIMOUNetPlus(num_res=8)
    assert fingerprint_differences(plus_at_8, load_fingerprint('MIMOUNet')) == []
    assert [m.p for m in plus_at_8.modules() if isinstance(m, torch.nn.Dropout2d)] == [0.1, 0.1]


def test_narrow_variants_keep_the_official_keys():
    official_keys = {key for key, _ in load_fingerprint('MIMOUNet')['state_dict']}
    assert set(small_net(num_res=8).state_dict()) == official_keys
    assert small_net(num_res=8).state_dict()['SCM2.main.3.main.0.weight'].shape[0] == 2 * 8 - 3


@pytest.mark.parametrize('arch', ARCHS)
def test_training_outputs_have_the_size_of_the_pooled_ground_truth(arch):
    net = small_net(arch).train()
    gt = torch.rand(1, 3, 37, 29)
    outputs = net(torch.rand(1, 3, 37, 29))
    assert list(outputs) == list(net.output_scale_factors)
    for key, factor in net.output_scale_factors.items():
        target = gt if factor == 1 else F.avg_pool2d(gt, factor)
        assert outputs[key].shape == target.shape, key


def test_coarse_outputs_are_residuals_over_the_subsampled_input():
    # Official: the 1/2 and 1/4 inputs are nearest-neighbour subsamples (every second
    # pixel), and each coarse output adds its head's prediction to them.
    net = small_net().train()
    for head in net.ConvsOut:
        torch.nn.init.zeros_(head.main[0].weight)
        torch.nn.init.zeros_(head.main[0].bias)
    image = torch.rand(1, 3, 32, 24)
    with torch.no_grad():
        outputs = net(image)
    torch.testing.assert_close(outputs['scale2'], image[..., ::2, ::2])
    torch.testing.assert_close(outputs['scale3'], image[..., ::4, ::4])


def test_plus_drops_features_only_in_training():
    net = small_net('MIMOUNetPlus')
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(net(image), net(image))
        net.train()
        torch.manual_seed(1)
        first = net(image)['final']
        torch.manual_seed(2)
        assert not torch.equal(first, net(image)['final'])


@pytest.mark.parametrize('arch', ARCHS)
def test_every_parameter_gets_a_gradient_in_training(arch):
    net = small_net(arch).train()
    outputs = net(torch.rand(1, 3, 16, 16))
    sum(out.mean() for out in outputs.values()).backward()
    assert [name for name, p in net.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('options, argument', [
    ({'num_res': 0}, 'num_res'),
    ({'num_res': 2.5}, 'num_res'),
    ({'base_channel': 1}, 'base_channel'),
    ({'base_channel': True}, 'base_channel'),
    ({'base_channels': 8}, 'base_channels'),  # misspelt: unknown argument
])
def test_bad_arguments_raise_value_error_naming_them(arch, options, argument):
    with pytest.raises(ValueError, match=f'{arch}: .*{argument}'):
        small_net(arch, **options)

