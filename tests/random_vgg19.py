"""A randomly initialised VGG19 state dict in torchvision's layout, for the tests of
StripformerLoss's contrastive term: the ImageNet weights are never downloaded."""
import torch
import torchvision


def write_random_vgg19(path, seed=0):
    """Save torchvision's ``vgg19(weights=None)`` feature layers (``features.*``, 80 MB;
    the classifier, which no loss reads, is left out) to ``path``; returns ``path``."""
    torch.manual_seed(seed)
    features = torchvision.models.vgg19(weights=None).features
    torch.save({f'features.{key}': value for key, value in features.state_dict().items()}, path)
    return path
