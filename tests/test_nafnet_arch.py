"""NAFNet architecture: registry, official key/shape fingerprints (width 64 and 32),
size contract, argument checks, gradients and the TLC test-time mode. Forward passes
run at width 8 on inputs of at most 64x64; full-size models are built on the meta device."""
import pytest
import torch
import torch.nn.functional as F
from basicsr.archs import build_network
from fingerprints import fingerprint_differences, load_fingerprint, state_dict_fingerprint

from basicsr_sgenet.archs.nafnet_arch import ChannelMean, LayerNorm2d, NAFNet

SMALL = dict(width=8)


def small_net(**options):
    torch.manual_seed(0)
    net = build_network(dict(type='NAFNet', **SMALL, **options))
    # beta and gamma start at zero, which makes every block the identity and cuts the
    # gradient to its convolutions: give them values so the whole network is exercised.
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith(('beta', 'gamma')):
                parameter.normal_(0, 0.5)
    return net


def test_builds_by_name():
    net = build_network({'type': 'NAFNet', 'width': 8, 'enc_blk_nums': [1, 2], 'dec_blk_nums': [1, 1]})
    assert isinstance(net, NAFNet)
    assert net.size_multiple == 4
    assert net.output_scale_factors == {'final': 1}


@pytest.mark.parametrize('name', ['NAFNet', 'NAFNet-width32'])
def test_state_dict_matches_the_official_fingerprint(name):
    fingerprint = load_fingerprint(name)
    with torch.device('meta'):
        net = build_network({'type': 'NAFNet', **fingerprint['kwargs']})
    assert fingerprint_differences(net, fingerprint) == []
    assert state_dict_fingerprint(net) == fingerprint['state_dict']  # same order too
    assert sum(p.numel() for p in net.parameters()) == fingerprint['num_params']
    assert net.size_multiple == 16


def test_defaults_are_the_gopro_width64_model():
    assert load_fingerprint('NAFNet')['kwargs'] == {}
    assert load_fingerprint('NAFNet')['num_params'] == 67888835
    assert load_fingerprint('NAFNet-width32')['num_params'] == 17111907


def test_full_size_forward_on_meta_keeps_the_shape():
    with torch.device('meta'):
        net = NAFNet(tlc_train_size=256).eval()
        out = net(torch.empty(1, 3, 45, 61))
    assert out.shape == (1, 3, 45, 61)


def test_training_mode_returns_the_image_and_every_parameter_gets_a_gradient():
    net = small_net().train()
    image = torch.rand(1, 3, 37, 29)
    out = net(image)
    assert isinstance(out, torch.Tensor) and out.shape == image.shape
    out.abs().mean().backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_layer_norm_normalizes_each_pixel_over_channels():
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 5, 4)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (6, ), norm.weight, norm.bias, eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected)


# --- TLC: the local channel mean of the official NAFNetLocal ----------------------------


def test_local_mean_is_the_box_average_with_replicated_borders():
    x = torch.rand(2, 3, 9, 12)
    out = ChannelMean((4, 5))(x)
    valid = F.avg_pool2d(x, (4, 5), stride=1)  # (6, 8): the boxes that fit
    # Centred, clamped: 3 missing rows (1 top, 2 bottom), 4 missing columns (2 left, 2 right).
    expected = F.pad(valid, (2, 2, 1, 2), mode='replicate')
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected)


def test_local_mean_is_the_global_mean_when_the_window_covers_the_image():
    x = torch.rand(1, 4, 6, 7)
    torch.testing.assert_close(ChannelMean((6, 7))(x), x.mean((2, 3), keepdim=True))
    torch.testing.assert_close(ChannelMean(None)(x), x.mean((2, 3), keepdim=True))
    # Covering one side only: boxes span that side fully and slide along the other.
    expected = F.pad(F.avg_pool2d(x, (6, 3), stride=1), (1, 1, 2, 3), mode='replicate')
    torch.testing.assert_close(ChannelMean((10, 3))(x), expected)


def test_tlc_windows_follow_the_official_rule():
    # NAFNetLocal with train_size 256: base 384, scaled by each level's downscale factor.
    windows = [m.window for m in NAFNet(width=8, tlc_train_size=256).modules() if isinstance(m, ChannelMean)]
    encoder = [(384, 384), (192, 192), (96, 96)] + [(48, 48)] * 28
    decoder = [(48, 48), (96, 96), (192, 192), (384, 384)]
    assert windows == encoder + decoder + [(24, 24)]  # modules() lists the middle blocks last
    windows = {m.window for m in NAFNet(width=8, tlc_train_size=[24, 40]).modules() if isinstance(m, ChannelMean)}
    # The official convert run pads 24x40 to 32x48; base 36x60; level 0: 32 * 36 // 24, 48 * 60 // 40.
    assert windows == {(48, 72), (24, 36), (12, 18), (6, 9), (3, 4)}
    assert all(m.window is None for m in NAFNet(width=8).modules() if isinstance(m, ChannelMean))


def test_tlc_changes_no_weight_and_only_acts_on_inputs_larger_than_its_windows():
    plain = small_net().eval()
    tlc_small = small_net(tlc_train_size=16).eval()
    tlc_large = small_net(tlc_train_size=256).eval()
    assert state_dict_fingerprint(plain) == state_dict_fingerprint(tlc_small)
    tlc_small.load_state_dict(plain.state_dict())
    tlc_large.load_state_dict(plain.state_dict())
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(plain(image), tlc_large(image))
        assert not torch.allclose(plain(image), tlc_small(image))


# --- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize('options, named', [
    ({'img_channel': 0}, 'img_channel'),
    ({'width': 0}, 'width'),
    ({'width': 8.0}, 'width'),
    ({'width': True}, 'width'),
    ({'middle_blk_num': -1}, 'middle_blk_num'),
    ({'enc_blk_nums': [1, -1]}, 'enc_blk_nums'),
    ({'enc_blk_nums': 4}, 'enc_blk_nums'),
    ({'dec_blk_nums': [1, 1, 1]}, 'dec_blk_nums'),
    ({'tlc_train_size': 0}, 'tlc_train_size'),
    ({'tlc_train_size': [256]}, 'tlc_train_size'),
    ({'tlc_train_size': '256'}, 'tlc_train_size'),
    ({'widht': 32}, 'widht'),
])
def test_bad_arguments_raise_value_error_naming_them(options, named):
    with pytest.raises(ValueError, match=named):
        NAFNet(**options)

