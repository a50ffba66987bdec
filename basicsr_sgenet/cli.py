"""What ``train.py`` and ``test.py`` share: load the plugin, check the option file, hand
over to a BasicSR pipeline, and turn known set-up mistakes into one clear sentence."""
import argparse
import os
import sys

from basicsr_sgenet.errors import DependencyError, LaunchError, OptionError


def check_option_file(path):
    """Fail early, naming the file and key, on what would otherwise surface as a deep
    traceback inside BasicSR (missing file, YAML syntax, unregistered network type)."""
    import yaml
    from basicsr.utils.registry import ARCH_REGISTRY

    if not os.path.isfile(path):
        raise OptionError(f'Option file {path} does not exist.')
    try:
        with open(path) as f:
            opt = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise OptionError(f'Option file {path} is not valid YAML: {err}') from None
    if not isinstance(opt, dict):
        raise OptionError(f'Option file {path} must be a YAML mapping of options.')
    for key in ('name', 'model_type'):
        if key not in opt:
            raise OptionError(f'Option file {path} has no "{key}" key.')
    for key, value in opt.items():
        if key.startswith('network_'):
            net_type = value.get('type') if isinstance(value, dict) else None
            if net_type not in ARCH_REGISTRY:
                raise OptionError(f'Option file {path}: {key}.type is {net_type!r}, which is not a registered '
                                  f'arch (known: {", ".join(sorted(name for name, _ in ARCH_REGISTRY))}).')
    return opt


def run_pipeline(pipeline_name, argv=None):
    """Run ``basicsr.train.train_pipeline`` or ``basicsr.test.test_pipeline`` from the
    current directory, so ``experiments/``, ``results/`` and ``tb_logger/`` land where the
    user is rather than inside site-packages."""
    argv = sys.argv[1:] if argv is None else argv
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument('-opt', required=True)
    known, _ = peek.parse_known_args(argv)
    try:
        import basicsr_sgenet  # noqa: F401  (compat fixes, registration)
        opt = check_option_file(known.opt)
    except (DependencyError, OptionError) as err:
        sys.exit(f'error: {err}')

    from basicsr_sgenet import compat
    from basicsr_sgenet.models.sgenet_model import NonFiniteLossError
    from basicsr_sgenet.pipeline_checks import CheckpointMismatchError
    from basicsr_sgenet.resume import BadStateError
    compat.requested_dist_backend = (opt.get('dist_params') or {}).get('backend')
    if pipeline_name == 'train':
        from basicsr.train import train_pipeline as pipeline
    else:
        from basicsr.test import test_pipeline as pipeline
    sys.argv = [sys.argv[0]] + list(argv)  # BasicSR's parse_options reads sys.argv
    try:
        pipeline(os.getcwd())
    except (BadStateError, CheckpointMismatchError, LaunchError, NonFiniteLossError, OptionError) as err:
        sys.exit(f'error: {err}')
