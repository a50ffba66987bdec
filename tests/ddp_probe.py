"""Runs ``basicsr_sgenet.train`` under torchrun exactly as the entry point does, then
saves this rank's final weights as ``rank<N>.pth`` and what it resumed from as
``rank<N>.json`` (``{"resumed_from": iteration or null, "grad_scaler": state or null}``)
in the working directory, so a test can check that every rank ended with the same network
and resumed from the same iteration. Test-only."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import basicsr_sgenet  # noqa: E402,F401
import basicsr.train  # noqa: E402
import torch  # noqa: E402
from basicsr_sgenet.integration.pipeline import run_pipeline  # noqa: E402

built = []
resumed = {'resumed_from': None, 'grad_scaler': None}
build_model = basicsr.train.build_model


def build_and_remember(opt):
    model = build_model(opt)
    resume_training = model.resume_training

    def remember_resume(state):
        resumed['resumed_from'] = state['iter']
        resume_training(state)
        if getattr(model, 'grad_scaler', None) is not None:
            resumed['grad_scaler'] = model.grad_scaler.state_dict()

    model.resume_training = remember_resume
    built.append(model)
    return model


basicsr.train.build_model = build_and_remember
run_pipeline('train')
model = built[0]
rank = os.environ['RANK']
torch.save(model.get_bare_model(model.net_g).state_dict(), f'rank{rank}.pth')
with open(f'rank{rank}.json', 'w') as f:
    json.dump(resumed, f)
