"""hubconf.py: torch.hub.load(<repository>, '<arch>', source='local', ...) for every
deblurring arch the plugin registers."""
import importlib.util
import os

import pytest
import torch
from conftest import REPO_ROOT
from tiny_archs import TINY_ARCHS

from basicsr_sgenet.integration.errors import InferenceError
from basicsr_sgenet.inference.network import plugin_archs


def test_one_entry_point_per_registered_deblurring_arch():
    # What torch.hub.list does (it only takes GitHub repositories): the public callables of hubconf.py
    spec = importlib.util.spec_from_file_location('hubconf', os.path.join(REPO_ROOT, 'hubconf.py'))
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    entries = sorted(name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith('_'))
    assert entries == plugin_archs()
    assert {'SGENet', 'MPRNet', 'MIMOUNet', 'MIMOUNetPlus', 'NAFNet', 'Restormer'} <= set(entries)
    assert hubconf.dependencies == ['torch', 'basicsr']
    assert 'Restormer in eval mode' in hubconf.Restormer.__doc__


@pytest.mark.parametrize('arch', ['Restormer', 'NAFNet'])
def test_load_returns_the_eval_network_with_the_weights(tmp_path, arch):
    torch.manual_seed(1)
    reference = torch.hub.load(REPO_ROOT, arch, source='local', **TINY_ARCHS[arch])
    path = tmp_path / 'weights.pth'
    torch.save({'params_ema': reference.state_dict()}, path)
    torch.manual_seed(2)
    network = torch.hub.load(REPO_ROOT, arch, source='local', weights=str(path), **TINY_ARCHS[arch])
    assert type(network).__name__ == arch and not network.training
    assert all(torch.equal(value, reference.state_dict()[name]) for name, value in network.state_dict().items())
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(network(image), reference.eval()(image))


def test_weights_of_another_configuration_are_refused_naming_the_keys(tmp_path):
    small = torch.hub.load(REPO_ROOT, 'NAFNet', source='local', **TINY_ARCHS['NAFNet'])
    path = tmp_path / 'small.pth'
    torch.save(small.state_dict(), path)
    with pytest.raises(InferenceError, match='does not fit NAFNet'):
        torch.hub.load(REPO_ROOT, 'NAFNet', source='local', weights=str(path), width=16)
