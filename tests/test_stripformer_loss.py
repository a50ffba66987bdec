"""StripformerLoss: Charbonnier + edge (reused) + the authors' contrastive term on VGG19
features, whose ImageNet weights the user supplies as a file (here a random VGG19 written
to a temporary folder; nothing is downloaded)."""
import os

import pytest
import torch
import torch.nn.functional as F

from basicsr_sgenet.integration.errors import OptionError
from basicsr_sgenet.losses.sgenet_loss import MultiScaleCharbonnierEdgeLoss
from basicsr_sgenet.losses.stripformer_loss import StripformerLoss
from basicsr_sgenet.integration.options import check_options, load_options
from conftest import REPO_ROOT
from random_vgg19 import write_random_vgg19


@pytest.fixture(scope='module')
def vgg19_file(tmp_path_factory):
    return write_random_vgg19(tmp_path_factory.mktemp('vgg') / 'vgg19.pth')


def images(height=32, width=24, seed=0):
    torch.manual_seed(seed)
    sharp = torch.rand(2, 3, height, width)
    blurred = sharp.clone()
    blurred[..., :height // 2, :] = F.avg_pool2d(sharp, 5, 1, 2)[..., :height // 2, :]  # top half blurred
    restored = sharp + 0.05 * torch.randn_like(sharp)
    return restored, sharp, blurred


def authors_contrastive(features, restored, sharp, blurred):
    """The authors' ContrastLoss, written from their formula: VGG on the images in their
    [-0.5, 0.5] range, mask of pixels whose mean |sharp - blur| exceeds 0.01, bilinear 1/4."""
    f_r, f_s, f_b = (features(image - 0.5) for image in (restored, sharp, blurred))
    mask = (torch.mean(torch.abs(sharp - blurred), dim=1, keepdim=True) > 0.01).float()
    mask = torch.nn.Upsample(scale_factor=1 / 4, mode='bilinear')(mask)
    d_ap = torch.mean(torch.abs(f_r - f_s), dim=1, keepdim=True)
    d_an = torch.mean(torch.abs(f_r - f_b), dim=1, keepdim=True)
    return torch.sum(d_ap / (d_an + 1e-7) * mask) / torch.sum(mask)


def test_loss_is_charbonnier_edge_plus_the_authors_contrastive_term(vgg19_file):
    import torchvision
    loss = StripformerLoss(vgg19_weights=str(vgg19_file))
    features = torchvision.models.vgg19(weights=None).features[:12].eval()  # the authors' slice
    features.load_state_dict({key[len('features.'):]: value for key, value in torch.load(vgg19_file).items()
                              if int(key.split('.')[1]) < 12})
    restored, sharp, blurred = images()
    terms = loss.terms(restored, sharp, blurred)
    assert list(terms) == ['final', 'contrastive']
    torch.testing.assert_close(terms['final'], MultiScaleCharbonnierEdgeLoss(edge_weight=0.05)(restored, sharp))
    with torch.no_grad():
        expected = 0.0005 * authors_contrastive(features, restored, sharp, blurred)
    assert expected > 0
    torch.testing.assert_close(terms['contrastive'], expected)
    torch.testing.assert_close(loss(restored, sharp, blurred), terms['final'] + terms['contrastive'])


def test_gradient_flows_to_the_restored_image_only_and_vgg_stays_frozen(vgg19_file):
    loss = StripformerLoss(vgg19_weights=str(vgg19_file)).train()
    restored, sharp, blurred = images()
    restored.requires_grad_()
    loss.terms(restored, sharp, blurred)['contrastive'].backward()
    assert restored.grad.abs().sum() > 0
    assert not loss.vgg.training and not any(p.requires_grad for p in loss.vgg.parameters())


def test_no_blurred_pixel_gives_zero_not_nan(vgg19_file):
    restored, sharp, _ = images()
    term = StripformerLoss(vgg19_weights=str(vgg19_file)).terms(restored, sharp, sharp.clone())['contrastive']
    assert term.item() == 0


def test_contrastive_weight_zero_needs_no_vgg_and_is_charbonnier_edge():
    loss = StripformerLoss(contrastive_weight=0, vgg19_weights='/nowhere/vgg19.pth')
    assert loss.vgg is None
    restored, sharp, blurred = images()
    assert list(loss.terms(restored, sharp, blurred)) == ['final']
    torch.testing.assert_close(loss(restored, sharp), MultiScaleCharbonnierEdgeLoss()(restored, sharp))


def test_the_blurred_input_is_required(vgg19_file):
    restored, sharp, _ = images()
    with pytest.raises(ValueError, match='blurred input'):
        StripformerLoss(vgg19_weights=str(vgg19_file)).terms(restored, sharp)


@pytest.mark.parametrize('case, message', [
    ('unset', 'vgg19_weights is not set'),
    ('missing', 'does not exist'),
    ('not torch', 'cannot be read as a torch state dict'),
    ('other dict', r'is not torchvision\'s VGG19 state dict \(features.0.weight should be \[64, 3, 3, 3\], '
                   'found missing'),
    ('wrong shape', r'features.10.weight should be \[256, 128, 3, 3\], found \(8, 128, 3, 3\)'),
])
def test_unusable_vgg19_weights_are_one_option_error_naming_key_and_file(tmp_path, vgg19_file, case, message):
    path = tmp_path / 'vgg19.pth'
    if case == 'not torch':
        path.write_text('not weights')
    elif case == 'other dict':
        torch.save({'params': {}}, path)
    elif case == 'wrong shape':
        state = torch.load(vgg19_file)
        state['features.10.weight'] = state['features.10.weight'][:8]
        torch.save(state, path)
    with pytest.raises(OptionError, match=message) as error:
        StripformerLoss(vgg19_weights=None if case == 'unset' else str(path))
    text = str(error.value)
    assert len(text.splitlines()) == 1 and 'contrastive_weight: 0' in text
    if case != 'unset':
        assert str(path) in text


def test_recipe_without_the_vgg_file_stops_before_the_run_naming_the_key(tmp_path, monkeypatch):
    # The recipe names experiments/pretrained_models/vgg19-dcbb9e9d.pth, absent here; the
    # datasets are not checked so only the loss can be at fault.
    monkeypatch.chdir(tmp_path)
    opt = load_options(os.path.join(REPO_ROOT, 'options', 'train_Stripformer_GoPro.yml'))
    with pytest.raises(OptionError, match=r'train\.pixel_opt\.vgg19_weights experiments/pretrained_models/'
                                          r'vgg19-dcbb9e9d\.pth does not exist.*contrastive_weight: 0'):
        check_options(opt, 'train_Stripformer_GoPro.yml', check_data=False)
    opt['train']['pixel_opt']['contrastive_weight'] = 0
    check_options(opt, 'train_Stripformer_GoPro.yml', check_data=False)


def test_train_entry_point_prints_one_error_line_and_creates_nothing(tmp_path, monkeypatch, capsys):
    from basicsr_sgenet.integration.pipeline import run_pipeline
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_pipeline('train', ['-opt', os.path.join(REPO_ROOT, 'options', 'train_Stripformer_GoPro.yml')])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith('error: ') and 'train.pixel_opt.vgg19_weights' in err and 'vgg19-dcbb9e9d.pth' in err
    assert os.listdir(tmp_path) == []
