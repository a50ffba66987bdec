"""FFTformer architecture: registry, official key/shape fingerprint, size contract, the
frequency-domain blocks, argument checks and gradients. Forward passes run at dim 8 with
one block per level on inputs of at most 64x64; the full-size model is built on the meta
device."""
import pytest
import torch
from basicsr.archs import build_network
from fingerprints import fingerprint_differences, load_fingerprint, state_dict_fingerprint

from basicsr_sgenet.archs.fftformer_arch import DFFN, FSAS, FFTformer, from_patches, to_patches
from basicsr_sgenet.archs.restormer_arch import FeedForward

SMALL = dict(dim=8, num_blocks=[1, 1, 1], num_refinement_blocks=1)
UNUSED = ['reduce_chan_level2.weight']  # built by the official model, never called


def small_net(**options):
    torch.manual_seed(0)
    return build_network(dict(type='FFTformer', **{**SMALL, **options}))


def test_builds_by_name():
    net = small_net()
    assert isinstance(net, FFTformer)
    assert net.size_multiple == 32  # 8x8 patches at 1/4 resolution
    assert net.output_scale_factors == {'final': 1}


def test_state_dict_matches_the_official_fingerprint():
    fingerprint = load_fingerprint('FFTformer')
    assert fingerprint['kwargs'] == {}
    with torch.device('meta'):
        net = build_network({'type': 'FFTformer', **fingerprint['kwargs']})
    assert fingerprint_differences(net, fingerprint) == []
    assert state_dict_fingerprint(net) == fingerprint['state_dict']  # same order too
    assert sum(p.numel() for p in net.parameters()) == fingerprint['num_params'] == 16560474


def test_full_size_forward_on_meta_keeps_the_shape():
    with torch.device('meta'):
        out = FFTformer().eval()(torch.empty(1, 3, 45, 61))
    assert out.shape == (1, 3, 45, 61)


def test_training_mode_returns_the_image_and_every_used_parameter_gets_a_gradient():
    net = small_net(bias=True).train()
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith('.fft'):  # all ones at init: make the filters do something
                parameter.uniform_(0.5, 1.5)
    image = torch.rand(1, 3, 37, 29)
    out = net(image)
    assert isinstance(out, torch.Tensor) and out.shape == image.shape
    out.abs().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == UNUSED + ['reduce_chan_level2.bias']


def test_patches_round_trip_and_hold_8x8_blocks():
    x = torch.arange(2 * 16 * 24, dtype=torch.float32).reshape(1, 2, 16, 24)
    patches = to_patches(x)
    assert patches.shape == (1, 2, 2, 3, 8, 8)
    assert torch.equal(patches[0, 1, 1, 2], x[0, 1, 8:16, 16:24])
    assert torch.equal(from_patches(patches), x)


def test_dffn_with_a_flat_spectrum_filter_is_restormers_gated_feed_forward():
    torch.manual_seed(0)
    dffn, gdfn = DFFN(4, 2, bias=True), FeedForward(4, 2, bias=True)
    gdfn.load_state_dict({key: value for key, value in dffn.state_dict().items() if key != 'fft'})
    x = torch.rand(2, 4, 16, 8)
    torch.testing.assert_close(dffn(x), gdfn(x))  # the filter starts at all ones: no filtering
    with torch.no_grad():
        dffn.fft[:, :, :, 0, 0] = 0  # drop every patch's mean: the output changes
    assert (dffn(x) - gdfn(x)).abs().max() > 1e-3


def test_fsas_circularly_convolves_queries_and_keys_within_each_patch():
    torch.manual_seed(0)
    fsas = FSAS(2, bias=False)
    x = torch.rand(1, 2, 16, 8)
    query, key, value = fsas.to_hidden_dw(fsas.to_hidden(x)).chunk(3, dim=1)
    q, k = to_patches(query), to_patches(key)  # (1, 4, 2, 1, 8, 8)
    expected = torch.zeros_like(q)
    for dy in range(8):  # out[i, j] = sum over (a, b) of q[a, b] * k[(i - a) % 8, (j - b) % 8]
        for dx in range(8):
            expected += q[..., dy:dy + 1, dx:dx + 1] * k.roll((dy, dx), dims=(-2, -1))
    expected = fsas.project_out(value * fsas.norm(from_patches(expected)))
    torch.testing.assert_close(fsas(x), expected, rtol=1e-4, atol=1e-5)


def test_variants_change_the_state_dict_like_the_official_code():
    keys = small_net(bias=True).state_dict()
    assert 'output.bias' in keys and 'encoder_level1.0.ffn.project_in.bias' in keys
    assert 'fuse1.att_channel.ffn.project_in.bias' not in keys  # the Fuse blocks never take bias
    assert 'encoder_level1.0.attn.to_hidden.weight' not in keys  # no attention in the encoder
    assert keys['decoder_level1.0.attn.to_hidden.weight'].shape == (48, 8, 1, 1)
    # DFFN width follows ffn_expansion_factor; the Fuse blocks keep 2.66 (int(16 * 2.66) = 42).
    assert small_net(ffn_expansion_factor=2).state_dict()['encoder_level1.0.ffn.fft'].shape == (32, 1, 1, 8, 5)
    assert keys['fuse1.att_channel.ffn.fft'].shape == (84, 1, 1, 8, 5)


@pytest.mark.parametrize('options, named', [
    ({'inp_channels': 0}, 'inp_channels'),
    ({'out_channels': 4}, 'out_channels'),
    ({'dim': 0}, 'dim'),
    ({'dim': 8.0}, 'dim'),
    ({'num_blocks': [6, 6, 12, 8]}, 'num_blocks'),  # the official signature's unused 4th entry
    ({'num_blocks': [1, 0, 1]}, 'num_blocks'),
    ({'num_refinement_blocks': -1}, 'num_refinement_blocks'),
    ({'ffn_expansion_factor': 0}, 'ffn_expansion_factor'),
    ({'ffn_expansion_factor': '3'}, 'ffn_expansion_factor'),
    ({'bias': 'no'}, 'bias'),
    ({'LayerNorm_type': 'WithBias'}, 'LayerNorm_type'),
])
def test_bad_arguments_raise_value_error_naming_them(options, named):
    with pytest.raises(ValueError, match=named):
        FFTformer(**{**SMALL, **options})


def test_channels_last_preparation_keeps_the_5d_spectrum_filters():
    # The deblur CLI and the benchmark run convolutions channels-last; Module.to(memory_format)
    # would fail on the 5-D DFFN filters.
    from basicsr_sgenet.inference.runtime import prepare_network

    net = small_net().eval()
    image = torch.rand(1, 3, 40, 24)
    with torch.no_grad():
        expected = net(image)
        prepared = prepare_network(net, torch.device('cpu'), channels_last=True)
        assert prepared.output.weight.is_contiguous(memory_format=torch.channels_last)
        assert prepared.encoder_level1[0].ffn.fft.dim() == 5
        torch.testing.assert_close(prepared(image.contiguous(memory_format=torch.channels_last)), expected)
