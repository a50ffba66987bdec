"""Runs ``basicsr_sgenet.train`` under torchrun exactly as the entry point does, then
saves this rank's final weights as ``rank<N>.pth`` in the working directory, so a test can
check that every rank ended with the same network. Test-only."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import basicsr_sgenet  # noqa: E402,F401
import basicsr.train  # noqa: E402
import torch  # noqa: E402
from basicsr_sgenet.integration.pipeline import run_pipeline  # noqa: E402

built = []
build_model = basicsr.train.build_model


def build_and_remember(opt):
    built.append(build_model(opt))
    return built[-1]


basicsr.train.build_model = build_and_remember
run_pipeline('train')
model = built[0]
torch.save(model.get_bare_model(model.net_g).state_dict(), f'rank{os.environ["RANK"]}.pth')
