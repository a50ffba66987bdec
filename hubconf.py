"""torch.hub entry points: one per deblurring arch this plugin registers (SGENet,
MPRNet, MIMOUNet, MIMOUNetPlus, NAFNet, Restormer, and any arch added later), each
returning the network in eval mode::

    import torch
    net = torch.hub.load('path/to/basicsr-sgenet', 'Restormer', source='local',
                         weights='https://example.org/restormer.pth#sha256=<hex>')
    net = torch.hub.load('path/to/basicsr-sgenet', 'NAFNet', source='local', weights='nafnet.pth', width=32)

``weights``: a file or an https URL (downloaded once into torch hub's cache, optional
``#sha256=`` pin; see ``basicsr_sgenet/integration/weights.py``), any checkpoint layout the deblur
CLI reads; ``param_key`` picks an entry; other keyword arguments are the arch's (default:
its published configuration). Without ``weights`` the network keeps its random
initialisation.
"""
dependencies = ['torch', 'basicsr']


def _entry_point(arch):

    def load(weights=None, param_key=None, **arch_kwargs):
        from basicsr_sgenet.inference.network import NetworkSpec, build_network
        from basicsr_sgenet.integration.weights import load_weights

        spec = NetworkSpec(arch=arch, kwargs=arch_kwargs, weights=weights, source='torch.hub.load')
        network = build_network(spec)
        if weights:
            load_weights(network, weights, param_key, network_description=spec.describe())
        return network.eval()

    load.__name__ = load.__qualname__ = arch
    load.__doc__ = (f'{arch} in eval mode. weights: a file or https URL (optional #sha256=<hex>); param_key: the '
                    f'checkpoint entry; other keyword arguments: {arch}\'s (default: its published configuration).')
    return load


def _entry_points():
    from basicsr_sgenet.inference.network import plugin_archs
    return {arch: _entry_point(arch) for arch in plugin_archs()}


globals().update(_entry_points())
