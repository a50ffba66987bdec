"""A randomly initialised VGG19 state dict in torchvision's layout, for the tests of
StripformerLoss's contrastive term: the ImageNet weights are never downloaded."""
from basicsr_sgenet.tools.gpu_check import write_random_vgg19  # noqa: F401  (the GPU check times with one too)
