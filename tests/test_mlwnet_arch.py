"""MLWNet architecture: registry, official key/shape fingerprint, training outputs (four
images and the wavelet regulariser), the learnable wavelet transform, the local (TLC)
test-time mode, argument checks and gradients. Forward passes run at dim 8 on inputs of
at most 64x64; the full-size model is built on the meta device."""
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from fingerprints import fingerprint_differences, load_fingerprint, state_dict_fingerprint

from basicsr_sgenet.archs.mlwnet_arch import LearnableWavelet, MLWNet
from basicsr_sgenet.archs.nafnet_arch import ChannelMean

SMALL = dict(dim=8, encoder_blocks=[1, 1, 1, 2], fusion_blocks=[1, 1], decoder_blocks=[1, 1, 1, 1])


def small_net(**options):
    torch.manual_seed(0)
    net = build_network(dict(type='MLWNet', **{**SMALL, **options}))
    # beta, gamma and alpha start at zero, which makes every block the identity and cuts
    # the gradient to its convolutions: give them values so the whole network is exercised.
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith(('beta', 'gamma', 'alpha')):
                parameter.normal_(0, 0.5)
    return net


def test_builds_by_name():
    net = build_network({'type': 'MLWNet', 'dim': 8})
    assert isinstance(net, MLWNet)
    assert net.size_multiple == 16
    assert net.output_scale_factors == {'final': 1, 'scale2': 2, 'scale3': 4, 'scale4': 8}


def test_state_dict_matches_the_official_fingerprint():
    fingerprint = load_fingerprint('MLWNet')
    assert fingerprint['kwargs'] == {}  # the defaults are the authors' GoPro model (dim 64)
    with torch.device('meta'):
        net = build_network({'type': 'MLWNet', **fingerprint['kwargs']})
    assert fingerprint_differences(net, fingerprint) == []
    assert state_dict_fingerprint(net) == fingerprint['state_dict']  # same order too
    assert sum(p.numel() for p in net.parameters()) == fingerprint['num_params'] == 95094892
    # The official DWT/IDWT register the LWN's filters again: both keys, one tensor.
    block = net.decoder.d1[0].wavelet_block1
    assert block.wavedec.dec_lo is block.dec_lo and block.waverec.rec_hi is block.rec_hi


def test_full_size_forward_on_meta_keeps_the_shape():
    with torch.device('meta'):
        net = MLWNet(tlc_train_size=256).eval()
        out = net(torch.empty(1, 3, 45, 61))
    assert out.shape == (1, 3, 45, 61)


def test_training_returns_four_images_and_the_wavelet_term_and_every_parameter_gets_a_gradient():
    net = small_net().train()
    with torch.no_grad():  # off Haar, so the regulariser is not zero and has a gradient
        for name, parameter in net.named_parameters():
            if name.endswith(('dec_lo', 'dec_hi', 'rec_lo', 'rec_hi')):
                parameter.add_(torch.randn(parameter.shape) * 0.1)
    out = net(torch.rand(2, 3, 37, 29))
    assert list(out) == ['final', 'scale2', 'scale3', 'scale4', 'wavelet']
    assert [tuple(out[key].shape) for key in ('final', 'scale2', 'scale3', 'scale4')] == [
        (2, 3, 37, 29), (2, 3, 18, 14), (2, 3, 9, 7), (2, 3, 4, 3)]
    assert out['wavelet'].dim() == 0 and out['wavelet'] > 0
    (sum(out[key].abs().mean() for key in ('final', 'scale2', 'scale3', 'scale4')) + out['wavelet']).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_eval_returns_only_the_restored_image():
    net = small_net().eval()
    image = torch.rand(1, 3, 20, 36)
    with torch.no_grad():
        out = net(image)
        train_out = net.train()(image)
    assert isinstance(out, torch.Tensor) and out.shape == image.shape
    torch.testing.assert_close(out, train_out['final'])  # the coarse heads do not feed the final image


# --- the learnable wavelet ---------------------------------------------------------------


def test_haar_wavelet_reconstructs_its_input_and_splits_a_constant_into_ll():
    wavelet = LearnableWavelet(3)
    x = torch.rand(2, 3, 8, 10)
    with torch.no_grad():
        torch.testing.assert_close(wavelet.waverec(wavelet.wavedec(x)), x)
        bands = wavelet.wavedec(torch.full((1, 3, 4, 4), 0.5))
    # Orthonormal Haar: LL = 2 x the mean of each 2x2 block, the three detail bands 0.
    assert bands.shape == (1, 12, 2, 2)
    torch.testing.assert_close(bands[:, 0::4], torch.ones(1, 3, 2, 2))
    assert bands.reshape(1, 3, 4, 2, 2)[:, :, 1:].abs().max() < 1e-6


def test_filter_bank_loss_is_zero_for_haar_and_the_authors_polynomial_products_otherwise():
    wavelet = LearnableWavelet(2)
    assert wavelet.filter_bank_loss().item() < 1e-12
    torch.manual_seed(1)
    with torch.no_grad():
        for name in ('dec_lo', 'dec_hi', 'rec_lo', 'rec_hi'):
            getattr(wavelet, name).add_(torch.randn(1, 2) * 0.2)
    dec_lo, dec_hi, rec_lo, rec_hi = (getattr(wavelet, n).detach().double().numpy()[0]
                                      for n in ('dec_lo', 'dec_hi', 'rec_lo', 'rec_hi'))
    # Filters are stored flipped: the product filters are dec reversed convolved with rec.
    reconstruction = np.convolve(dec_lo[::-1], rec_lo) + np.convolve(dec_hi[::-1], rec_hi) - [0, 2, 0]
    modulation = np.array([-1.0, 1.0])  # (-1)^n, reversed, on the reversed analysis filters
    aliasing = np.convolve(dec_lo[::-1] * modulation, rec_lo) + np.convolve(dec_hi[::-1] * modulation, rec_hi)
    expected = (reconstruction**2).sum() + (aliasing**2).sum()
    assert wavelet.filter_bank_loss().item() == pytest.approx(expected, rel=1e-5)


def test_wavelet_term_sums_all_twelve_wavelet_blocks():
    net = MLWNet(dim=4, encoder_blocks=[1, 1, 1, 1])
    wavelets = [m for m in net.modules() if isinstance(m, LearnableWavelet)]
    assert len(wavelets) == 12  # fusion 2 + 2, decoder 2 x 4
    with torch.no_grad():
        for wavelet in wavelets:
            wavelet.dec_lo.add_(0.1)
    torch.testing.assert_close(net.wavelet_loss(), sum(w.filter_bank_loss() for w in wavelets))
    assert net.wavelet_loss() > 0


# --- local test-time mode (the authors' MLWNet_Local) ---------------------------------------


def test_local_mode_windows_follow_the_official_rule():
    net = MLWNet(dim=8, tlc_train_size=256)
    window = {name: m.window for name, m in net.named_modules() if isinstance(m, ChannelMean)}
    # MLWNet_Local: base 384 = 1.5 x 256, scaled by each level's downscale factor.
    assert window['encoder.b1.0.sca.0'] == (384, 384) and window['encoder.b4.23.sca.0'] == (48, 48)
    assert window['fusion.d3.1.sca.0'] == (96, 96) and window['fusion.d2.0.sca.0'] == (192, 192)
    assert window['decoder.d4.0.sca.0'] == (48, 48) and window['decoder.d1.1.sca.0'] == (384, 384)
    assert len(window) == 1 + 2 + 4 + 24 + 4 + 8
    assert all(m.window is None for m in MLWNet(dim=8).modules() if isinstance(m, ChannelMean))


def test_local_mode_changes_no_weight_and_only_acts_on_inputs_larger_than_its_windows():
    plain = small_net().eval()
    local_small = small_net(tlc_train_size=16).eval()
    local_large = small_net(tlc_train_size=256).eval()
    assert state_dict_fingerprint(plain) == state_dict_fingerprint(local_small)
    local_small.load_state_dict(plain.state_dict())
    local_large.load_state_dict(plain.state_dict())
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(plain(image), local_large(image))
        assert not torch.allclose(plain(image), local_small(image))


# --- argument checks --------------------------------------------------------------------


@pytest.mark.parametrize('options, named', [
    ({'inp_channels': 0}, 'inp_channels'),
    ({'out_channels': 1}, 'out_channels'),
    ({'dim': 0}, 'dim'),
    ({'dim': 8.0}, 'dim'),
    ({'encoder_blocks': [1, 1, 1]}, 'encoder_blocks'),
    ({'fusion_blocks': [1, -1]}, 'fusion_blocks'),
    ({'decoder_blocks': 2}, 'decoder_blocks'),
    ({'tlc_train_size': 0}, 'tlc_train_size'),
    ({'tlc_train_size': [256]}, 'tlc_train_size'),
    ({'base_size': 384}, 'base_size'),
])
def test_bad_arguments_raise_value_error_naming_them(options, named):
    with pytest.raises(ValueError, match=named):
        MLWNet(**options)
