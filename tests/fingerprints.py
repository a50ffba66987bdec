"""Key/shape fingerprints of official implementations, kept as test data.

A fingerprint is ``tests/data/fingerprints/<Arch>.json``::

    {"arch": "MPRNet", "source": "<repository, file and commit it was read from>",
     "kwargs": {}, "num_params": 20129739,
     "state_dict": [["shallow_feat1.0.weight", [96, 3, 3, 3]], ...]}

``state_dict`` lists the official model's ``state_dict()`` in order. An arch whose
``state_dict()`` equals it, keys and shapes, loads the authors' checkpoints with
``strict=True``.
"""
import json
import os

FINGERPRINT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'fingerprints')


def state_dict_fingerprint(network):
    """``[[key, shape], ...]`` of ``network.state_dict()``, in order."""
    return [[key, list(value.shape)] for key, value in network.state_dict().items()]


def load_fingerprint(name):
    with open(os.path.join(FINGERPRINT_DIR, f'{name}.json')) as f:
        return json.load(f)


def fingerprint_differences(network, fingerprint):
    """Human-readable differences between ``network`` and an official fingerprint (empty: equal)."""
    ours = {key: shape for key, shape in state_dict_fingerprint(network)}
    official = {key: shape for key, shape in fingerprint['state_dict']}
    problems = [f'missing {key} {shape}' for key, shape in official.items() if key not in ours]
    problems += [f'unexpected {key} {shape}' for key, shape in ours.items() if key not in official]
    problems += [f'{key}: ours {ours[key]} vs official {shape}' for key, shape in official.items()
                 if key in ours and ours[key] != shape]
    return problems
