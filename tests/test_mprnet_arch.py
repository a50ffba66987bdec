"""MPRNet: registry, official state-dict fingerprint, output contract, argument checks.
Forward passes run at reduced width on inputs of at most 64x64; the full-size model is
only built on the meta device."""
import pytest
import torch
from basicsr.archs import build_network
from fingerprints import fingerprint_differences, load_fingerprint

from basicsr_sgenet.archs.mprnet_arch import MPRNet
from basicsr_sgenet.tools.profiling import count_parameters

SMALL = dict(n_feat=8, scale_unetfeats=4, scale_orsnetfeats=4, num_cab=1)


def small_net(**options):
    torch.manual_seed(0)
    return build_network(dict(type='MPRNet', **{**SMALL, **options}))


def test_builds_by_name():
    net = small_net()
    assert isinstance(net, MPRNet)
    assert net.size_multiple == 8
    assert list(net.output_scale_factors.items()) == [('final', 1), ('stage2', 1), ('stage1', 1)]


def test_default_state_dict_is_the_official_one():
    fingerprint = load_fingerprint('MPRNet')
    with torch.device('meta'):
        net = build_network({'type': 'MPRNet'})
    assert fingerprint_differences(net, fingerprint) == []
    assert count_parameters(net) == fingerprint['num_params']


def test_one_prelu_is_shared_by_the_whole_network():
    # The official model builds a single PReLU and hands it to every CAB: one learned
    # slope, stored under every CAB's key, counted once in the parameters.
    net = small_net()
    prelus = {id(m) for m in net.modules() if isinstance(m, torch.nn.PReLU)}
    assert len(prelus) == 1
    keys = [k for k in net.state_dict() if k.endswith('body.1.weight')]
    assert len(keys) > 10 and 'shallow_feat1.1.body.1.weight' in keys


def test_training_returns_every_stage_at_full_size():
    net = small_net().train()
    outputs = net(torch.rand(1, 3, 21, 18))
    assert list(outputs) == list(net.output_scale_factors)
    assert all(out.shape == (1, 3, 21, 18) for out in outputs.values())


def test_stage1_sees_only_its_own_half_of_the_image():
    # Multi-patch hierarchy: stage 1 restores the top and bottom halves separately,
    # stage 2 and 3 see the whole image.
    net = small_net().train()
    image = torch.rand(1, 3, 32, 32)
    changed = image.clone()
    changed[..., :16, :] = torch.rand(1, 3, 16, 32)
    with torch.no_grad():
        before, after = net(image), net(changed)
    torch.testing.assert_close(after['stage1'][..., 16:, :], before['stage1'][..., 16:, :])
    assert not torch.allclose(after['final'][..., 16:, :], before['final'][..., 16:, :])


def test_every_parameter_gets_a_gradient_in_training():
    net = small_net(bias=True).train()
    outputs = net(torch.rand(1, 3, 16, 16))
    sum(out.mean() for out in outputs.values()).backward()
    assert [name for name, p in net.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize('options, argument', [
    ({'n_feat': 0}, 'n_feat'),
    ({'n_feat': 8.0}, 'n_feat'),
    ({'in_c': 0}, 'in_c'),
    ({'out_c': 1}, 'out_c'),
    ({'scale_unetfeats': -1}, 'scale_unetfeats'),
    ({'scale_orsnetfeats': 'x'}, 'scale_orsnetfeats'),
    ({'num_cab': 0}, 'num_cab'),
    ({'kernel_size': 2}, 'kernel_size'),
    ({'reduction': 0}, 'reduction'),
    ({'reduction': 9}, 'reduction'),  # more than n_feat = 8
    ({'bias': 'no'}, 'bias'),
    ({'nfeat': 8}, 'nfeat'),  # misspelt: unknown argument
])
def test_bad_arguments_raise_value_error_naming_them(options, argument):
    with pytest.raises(ValueError, match=f'MPRNet: .*{argument}'):
        small_net(**options)

