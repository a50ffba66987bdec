"""What ``train.py`` and ``test.py`` share: load the plugin, check the option file, hand
over to a BasicSR pipeline, and turn known set-up mistakes into one clear sentence."""
import argparse
import os
import sys

from basicsr_sgenet.errors import DependencyError, LaunchError, OptionError


def _is_registered_arch(name):
    from basicsr.utils.registry import ARCH_REGISTRY
    # BasicSR registers some archs under a suffixed name (``SRVGGNetCompact_basicsr``)
    # and Registry.get falls back to it.
    return isinstance(name, str) and (name in ARCH_REGISTRY or f'{name}_basicsr' in ARCH_REGISTRY)


def check_option_file(path, overridden_keys=()):
    """Fail early, naming the file and key, on what would otherwise surface as a deep
    traceback inside BasicSR (missing file, YAML syntax, unregistered network type).
    ``overridden_keys``: top-level keys that ``--force_yml`` changes, left unchecked."""
    import yaml
    from basicsr.utils.options import ordered_yaml
    from basicsr.utils.registry import ARCH_REGISTRY

    if not os.path.isfile(path):
        raise OptionError(f'Option file {path} does not exist.')
    try:
        with open(path) as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])  # BasicSR's own loader, tags and all
    except yaml.YAMLError as err:
        raise OptionError(f'Option file {path} is not valid YAML: {err}') from None
    if not isinstance(opt, dict):
        raise OptionError(f'Option file {path} must be a YAML mapping of options.')
    for key in ('name', 'model_type'):
        if key not in opt:
            raise OptionError(f'Option file {path} has no "{key}" key.')
    for key, value in opt.items():
        if key.startswith('network_') and key not in overridden_keys:
            net_type = value.get('type') if isinstance(value, dict) else None
            if not _is_registered_arch(net_type):
                raise OptionError(f'Option file {path}: {key}.type is {net_type!r}, which is not a registered '
                                  f'arch (known: {", ".join(sorted(name for name, _ in ARCH_REGISTRY))}).')
    return opt


def run_pipeline(pipeline_name, argv=None):
    """Run ``basicsr.train.train_pipeline`` or ``basicsr.test.test_pipeline`` from the
    current directory, so ``experiments/``, ``results/`` and ``tb_logger/`` land where the
    user is rather than inside site-packages."""
    argv = sys.argv[1:] if argv is None else argv
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument('-opt')
    peek.add_argument('--force_yml', nargs='+', default=[])
    known, _ = peek.parse_known_args(argv)
    try:
        import basicsr_sgenet  # noqa: F401  (compat fixes, registration)
        opt = check_option_file(known.opt, {entry.split(':')[0] for entry in known.force_yml}) if known.opt else {}
    except (DependencyError, OptionError) as err:
        sys.exit(f'error: {err}')

    from basicsr_sgenet import compat
    from basicsr_sgenet.models.sgenet_model import NonFiniteLossError
    from basicsr_sgenet.pipeline_checks import CheckpointMismatchError
    from basicsr_sgenet.resume import BadStateError
    dist_params = opt.get('dist_params') if isinstance(opt.get('dist_params'), dict) else {}
    compat.requested_dist_backend = dist_params.get('backend')
    timeout = dist_params.get('timeout_minutes')
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        sys.exit(f'error: Option file {known.opt}: dist_params.timeout_minutes must be a positive number, '
                 f'not {timeout!r}.')
    compat.requested_dist_timeout_minutes = timeout
    if pipeline_name == 'train':
        from basicsr.train import train_pipeline as pipeline
    else:
        from basicsr.test import test_pipeline as pipeline
    sys.argv = [sys.argv[0]] + list(argv)  # BasicSR's parse_options reads sys.argv
    try:
        pipeline(os.getcwd())
    except (BadStateError, CheckpointMismatchError, LaunchError, NonFiniteLossError, OptionError) as err:
        sys.exit(f'error: {err}')
