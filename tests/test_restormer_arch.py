"""Restormer architecture: registry, official key/shape fingerprint, size contract,
argument checks and gradients. Forward passes run at dim 8 with one block per level on
inputs of at most 64x64; the full-size model is built on the meta device."""
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from fingerprints import fingerprint_differences, load_fingerprint, state_dict_fingerprint

from basicsr_sgenet.archs.restormer_arch import Attention, ChannelLayerNorm, Restormer

SMALL = dict(dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)


def small_net(**options):
    torch.manual_seed(0)
    return build_network(dict(type='Restormer', **{**SMALL, **options}))


def test_builds_by_name():
    net = small_net()
    assert isinstance(net, Restormer)
    assert net.size_multiple == 8
    assert net.output_scale_factors == {'final': 1}


def test_state_dict_matches_the_official_fingerprint():
    fingerprint = load_fingerprint('Restormer')
    assert fingerprint['kwargs'] == {}
    with torch.device('meta'):
        net = build_network({'type': 'Restormer', **fingerprint['kwargs']})
    assert fingerprint_differences(net, fingerprint) == []
    assert state_dict_fingerprint(net) == fingerprint['state_dict']  # same order too
    assert sum(p.numel() for p in net.parameters()) == fingerprint['num_params'] == 26126644


def test_full_size_forward_on_meta_keeps_the_shape():
    with torch.device('meta'):
        out = Restormer().eval()(torch.empty(1, 3, 45, 61))
    assert out.shape == (1, 3, 45, 61)


def test_training_mode_returns_the_image_and_every_parameter_gets_a_gradient():
    net = small_net(bias=True).train()
    image = torch.rand(1, 3, 37, 29)
    out = net(image)
    assert isinstance(out, torch.Tensor) and out.shape == image.shape
    out.abs().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_layer_norm_variants():
    x = torch.randn(2, 6, 5, 4)
    norm = ChannelLayerNorm(6, with_bias=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6, ), norm.weight, norm.bias, eps=1e-5).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)
    # BiasFree divides by the standard deviation but keeps the mean.
    bias_free = ChannelLayerNorm(6, with_bias=False)
    assert [name for name, _ in bias_free.named_parameters()] == ['weight']
    torch.testing.assert_close(bias_free(x), x / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5))


def test_attention_is_across_channels_per_head():
    torch.manual_seed(0)
    attention = Attention(8, num_heads=2, bias=False)
    x = torch.rand(1, 8, 6, 5)
    q, k, v = attention.qkv_dwconv(attention.qkv(x)).chunk(3, dim=1)
    outputs = []
    for head in range(2):
        channels = slice(4 * head, 4 * head + 4)
        qh, kh, vh = (t[0, channels].flatten(1) for t in (q, k, v))  # (4 channels, 30 pixels)
        weights = (F.normalize(qh, dim=-1) @ F.normalize(kh, dim=-1).T * attention.temperature[head]).softmax(-1)
        outputs.append((weights @ vh).reshape(4, 6, 5))
    expected = attention.project_out(torch.cat(outputs)[None])
    torch.testing.assert_close(attention(x), expected)


def test_variants_change_the_state_dict_like_the_official_code():
    keys = set(small_net(LayerNorm_type='BiasFree').state_dict())
    assert not any(key.endswith('body.bias') for key in keys)
    assert 'output.bias' in small_net(bias=True).state_dict()
    dual_pixel = small_net(inp_channels=6, dual_pixel_task=True).eval()
    assert dual_pixel.state_dict()['skip_conv.weight'].shape == (16, 8, 1, 1)
    with torch.no_grad():
        assert dual_pixel(torch.rand(1, 6, 9, 10)).shape == (1, 3, 9, 10)


@pytest.mark.parametrize('options, named', [
    ({'inp_channels': 0}, 'inp_channels'),
    ({'out_channels': 4}, 'out_channels'),
    ({'dim': 7}, 'dim'),
    ({'dim': 0}, 'dim'),
    ({'num_blocks': [1, 1, 1]}, 'num_blocks'),
    ({'num_blocks': [1, 0, 1, 1]}, 'num_blocks'),
    ({'num_refinement_blocks': -1}, 'num_refinement_blocks'),
    ({'heads': [1, 2, 4]}, 'heads'),
    ({'heads': [3, 2, 4, 8]}, r'heads\[0\]'),
    ({'ffn_expansion_factor': 0}, 'ffn_expansion_factor'),
    ({'ffn_expansion_factor': '2.66'}, 'ffn_expansion_factor'),
    ({'bias': 'no'}, 'bias'),
    ({'LayerNorm_type': 'withbias'}, 'LayerNorm_type'),
    ({'dual_pixel_task': 1}, 'dual_pixel_task'),
    ({'in_channels': 3}, 'in_channels'),
])
def test_bad_arguments_raise_value_error_naming_them(options, named):
    with pytest.raises(ValueError, match=named):
        Restormer(**{**SMALL, **options})

