"""Stripformer architecture: registry, official key/shape fingerprint, the [0, 1] <-> [-0.5, 0.5]
shift of the authors' data, strip attention's structure, argument checks and gradients.
Forward passes run at reduced widths on inputs of at most 64x64; the full-size model is
built on the meta device."""
import pytest
import torch
from basicsr.archs import build_network
from fingerprints import fingerprint_differences, load_fingerprint, state_dict_fingerprint

from basicsr_sgenet.archs.stripformer_arch import Inter_SA, Intra_SA, Stripformer, multi_head_attention

SMALL = dict(widths=[8, 12, 16], decoder_width=12, heads=2, decoder_heads=3, num_blocks=2, decoder_blocks=2)


def small_net(**options):
    torch.manual_seed(0)
    return build_network(dict(type='Stripformer', **{**SMALL, **options}))


def test_builds_by_name():
    net = build_network({'type': 'Stripformer', **SMALL})
    assert isinstance(net, Stripformer)
    assert net.size_multiple == 8  # the authors' test scripts pad to 8
    assert net.output_scale_factors == {'final': 1}


def test_state_dict_matches_the_official_fingerprint():
    fingerprint = load_fingerprint('Stripformer')
    assert fingerprint['kwargs'] == {}  # the defaults are the authors' (only) model
    with torch.device('meta'):
        net = build_network({'type': 'Stripformer'})
    assert fingerprint_differences(net, fingerprint) == []
    assert state_dict_fingerprint(net) == fingerprint['state_dict']  # same order too
    assert sum(p.numel() for p in net.parameters()) == fingerprint['num_params'] == 19708611


def test_full_size_forward_on_meta_keeps_the_shape():
    with torch.device('meta'):
        out = Stripformer().eval()(torch.empty(1, 3, 45, 61))
    assert out.shape == (1, 3, 45, 61)


def test_blocks_alternate_intra_and_inter_strip_attention():
    net = Stripformer(**{**SMALL, 'num_blocks': 4, 'decoder_blocks': 3})
    assert [type(getattr(net, f'Trans_block_{i}')) for i in range(1, 5)] == [Intra_SA, Inter_SA] * 2
    assert [type(getattr(net.decoder, f'de_block_{i}')) for i in range(1, 4)] == [Intra_SA, Inter_SA, Intra_SA]
    assert not hasattr(net, 'Trans_block_5')


def test_the_network_sees_the_authors_shifted_input():
    # The authors train and test on image - 0.5 and add 0.5 back: a network whose
    # layers all output zero must return its input, and the encoder must see x - 0.5.
    net = small_net().eval()
    seen = []
    net.encoder.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    image = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        net(image)
    torch.testing.assert_close(seen[0], image - 0.5)
    with torch.no_grad():
        for parameter in net.decoder.de_layer1_1.parameters():
            parameter.zero_()
        assert torch.equal(net(image), image)


def test_multi_head_attention_splits_the_token_features_into_heads():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 5, 12).unbind(0)
    expected = []
    for head in range(3):
        part = slice(4 * head, 4 * head + 4)
        weights = (q[..., part] @ k[..., part].transpose(-1, -2) / 2).softmax(-1)  # sqrt(12 / 3) = 2
        expected.append(weights @ v[..., part])
    torch.testing.assert_close(multi_head_attention(q, k, v, 3), torch.cat(expected, -1))


@pytest.mark.parametrize('block', [Intra_SA, Inter_SA])
def test_attention_stays_within_strips_as_designed(block):
    # Intra-strip attention mixes pixels only within their row (first half of the channels)
    # and column (second half); the 1x1 convs and the MLP are per pixel, PEG is a 3x3
    # depthwise conv. So before PEG, a change at one pixel reaches only its row and column.
    torch.manual_seed(0)
    layer = block(8, 2).eval()
    layer.PEG = torch.nn.Identity()
    x = torch.randn(1, 8, 6, 7)
    changed = x.clone()
    changed[..., 2, 3] += torch.randn(8)  # not a constant: the layer norm would remove that
    with torch.no_grad():
        moved = (layer(changed) - layer(x)).abs().sum(1)[0] > 1e-6
    if block is Intra_SA:
        expected = torch.zeros(6, 7, dtype=torch.bool)
        expected[2, :] = expected[:, 3] = True
        assert torch.equal(moved, expected)
    else:  # Inter-strip: whole rows and columns are tokens, so every pixel can change
        assert moved.all()


def test_training_mode_returns_the_image_and_every_parameter_gets_a_gradient():
    net = small_net().train()
    image = torch.rand(1, 3, 37, 29)
    out = net(image)
    assert isinstance(out, torch.Tensor) and out.shape == image.shape
    out.abs().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize('options, named', [
    ({'img_channel': 0}, 'img_channel'),
    ({'widths': [8, 8]}, 'widths'),
    ({'widths': [8, 8, 8.0]}, 'widths'),
    ({'decoder_width': 0}, 'decoder_width'),
    ({'heads': 3}, 'heads'),             # does not divide 16 / 2
    ({'decoder_heads': 4}, 'decoder_heads'),  # does not divide 12 / 2
    ({'widths': [8, 8, 15], 'heads': 1}, r'widths\[2\]'),  # odd: no halves
    ({'num_blocks': 0}, 'num_blocks'),
    ({'decoder_blocks': True}, 'decoder_blocks'),
    ({'dim': 32}, 'dim'),
])
def test_bad_arguments_raise_value_error_naming_them(options, named):
    with pytest.raises(ValueError, match=named):
        Stripformer(**{**SMALL, **options})


def test_exported_graph_scales_inter_strip_attention_at_every_size(tmp_path):
    # An inter-strip token is a whole C/2 x W strip, so the attention scale 1/sqrt(C/2 x W
    # / heads) depends on the input size: the ONNX graph must compute it, not keep the
    # traced size's. Sharpened attention (larger Q, K) makes a frozen scale visible.
    pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    from basicsr_sgenet.export import export_to_onnx, parity_difference
    net = small_net().eval()
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if 'conv_h' in name or 'conv_v' in name:
                parameter.mul_(8)
    path = tmp_path / 'stripformer.onnx'
    path.write_bytes(export_to_onnx(net, trace_size=(64, 64)).SerializeToString())
    for size in [(64, 64), (40, 24), (16, 56)]:
        assert parity_difference(net, str(path), size) < 1e-4, size

