"""Reduced widths of every registered deblurring arch, for tests (each still pads to its
size multiple and keeps its structure)."""
import torch
from basicsr.utils.registry import ARCH_REGISTRY

TINY_ARCHS = {
    'SGENet': {'channels': [8, 12, 16], 'num_rdm': 1},
    'MPRNet': {'n_feat': 8, 'scale_unetfeats': 4, 'scale_orsnetfeats': 4, 'num_cab': 1},
    'MIMOUNet': {'num_res': 1, 'base_channel': 8},
    'MIMOUNetPlus': {'num_res': 1, 'base_channel': 8},
    'NAFNet': {'width': 8, 'enc_blk_nums': [1, 1], 'dec_blk_nums': [1, 1], 'middle_blk_num': 1},
    'Restormer': {'dim': 8, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 1, 1, 1]},
    'MLWNet': {'dim': 8, 'encoder_blocks': [1, 1, 1, 1], 'fusion_blocks': [1, 1], 'decoder_blocks': [1, 1, 1, 1]},
    'FFTformer': {'dim': 8, 'num_blocks': [1, 1, 1], 'num_refinement_blocks': 1},
    'Stripformer': {'widths': [8, 8, 8], 'decoder_width': 8, 'heads': 2, 'decoder_heads': 2, 'num_blocks': 2,
                    'decoder_blocks': 2},
}


def tiny_network(arch, seed=0):
    """A reduced network in eval mode with every parameter non-zero (NAFNet and others
    start some residual scales at zero, which would hide most of the graph from a test)."""
    torch.manual_seed(seed)
    network = ARCH_REGISTRY.get(arch)(**TINY_ARCHS[arch]).eval()
    with torch.no_grad():
        for parameter in network.parameters():
            if not parameter.abs().sum():
                parameter.normal_(0, 0.1)
    return network
