"""Building a registered network from the command line or from a BasicSR option file.

Shared by the deblur CLI, ``scripts/benchmark.py`` and ``scripts/compare.py``: all of
them name a network either as ``arch name + JSON kwargs`` or as an option file's
``network_g``.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Optional

from basicsr_sgenet.integration.errors import InferenceError, OptionError
from basicsr_sgenet.integration.weights import fetch_weights, is_url

DEFAULT_ARCH = 'SGENet'


@dataclass
class NetworkSpec:
    """What to build: a registered arch and its keyword arguments, plus what an option
    file says about its weights (``path.pretrain_network_g`` / ``path.param_key_g``)."""
    arch: str
    kwargs: dict = field(default_factory=dict)
    weights: Optional[str] = None
    param_key: Optional[str] = None
    source: str = 'command line'

    def describe(self):
        args = ', '.join(f'{key}={value!r}' for key, value in self.kwargs.items())
        return f'{self.arch}({args})'


def parse_arch_args(text, argument='--arch-args'):
    """JSON object -> dict, or InferenceError naming ``argument``."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InferenceError(f'{argument} is not valid JSON ({err}): {text}') from None
    if not isinstance(value, dict):
        raise InferenceError(f'{argument} must be a JSON object such as \'{{"channels": [48, 60, 72]}}\', got {text}')
    return value


def spec_from_option_file(path, network_key='network_g'):
    """NetworkSpec from a BasicSR option file's ``network_g`` (and its weights path)."""
    from basicsr_sgenet.integration.options import read_option_file

    try:
        opt = read_option_file(path)
    except OptionError as err:
        raise InferenceError(str(err)) from None
    if not isinstance(opt.get(network_key), dict):
        raise InferenceError(f'Option file {path} has no "{network_key}" section')
    spec = spec_from_options(opt, path, network_key)
    if spec is None:
        raise InferenceError(f'Option file {path}: {network_key} has no "type"')
    return spec


def spec_from_options(opt, source, network_key='network_g'):
    """NetworkSpec from BasicSR options (a dict: an option file, a logged option dump or a
    study's run) - ``network_g`` and the weights under ``path`` - or None without a type."""
    kwargs = dict((opt or {}).get(network_key) or {})
    arch = kwargs.pop('type', None)
    if not arch:
        return None
    paths = opt.get('path') or {}
    return NetworkSpec(arch=arch, kwargs=kwargs, weights=paths.get('pretrain_network_g'),
                       param_key=paths.get('param_key_g'), source=source)


def network_spec_from_args(args):
    """NetworkSpec from the commands' ``--opt`` or ``--arch``/``--arch-args``, with
    ``--weights``/``--param-key`` (which override the option file's)."""
    if args.opt:
        if args.arch or args.arch_args:
            raise InferenceError('--opt already names the network; drop --arch/--arch-args or --opt')
        spec = spec_from_option_file(args.opt)
    else:
        spec = NetworkSpec(arch=args.arch or DEFAULT_ARCH, kwargs=parse_arch_args(args.arch_args))
    spec.weights = args.weights or spec.weights
    spec.param_key = args.param_key or spec.param_key
    if not spec.weights:
        raise InferenceError('No weights given: pass --weights, or an --opt whose path.pretrain_network_g is set')
    if is_url(spec.weights):
        # downloaded (once) now, so a bad URL stops the run before any work
        fetch_weights(spec.weights, progress=not getattr(args, 'quiet', False))
    elif not os.path.isfile(spec.weights):
        origin = '--weights' if args.weights else f'path.pretrain_network_g in {args.opt}'
        raise InferenceError(f'Weights file {spec.weights} does not exist (from {origin})')
    return spec


def build_network(spec):
    """Instantiate ``spec`` from BasicSR's ARCH_REGISTRY (plugin archs included).

    Called directly rather than through ``basicsr.archs.build_network``, which logs to
    BasicSR's root logger and would print to the console of a command-line tool.
    """
    import basicsr.archs  # noqa: F401  (BasicSR's own archs registered)
    from basicsr.utils.registry import ARCH_REGISTRY

    import basicsr_sgenet  # noqa: F401  (compat fixes, plugin archs registered)

    if spec.arch not in ARCH_REGISTRY:
        known = ', '.join(sorted(name for name, _ in ARCH_REGISTRY))
        raise InferenceError(f'Unknown arch {spec.arch!r} (from {spec.source}); registered archs: {known}')
    try:
        return ARCH_REGISTRY.get(spec.arch)(**spec.kwargs)
    except (TypeError, ValueError) as err:
        raise InferenceError(f'Cannot build {spec.describe()} (from {spec.source}): {err}') from None


def plugin_archs():
    """Names of the networks this plugin registers (its deblurring archs), sorted: found in
    the registry by the module that defines them, ``basicsr_sgenet/archs/*_arch.py``, so a
    new arch file joins every list built from this (torch.hub's entry points, the web
    page's choices). Registered building blocks (SGENet's RDM, CEM, CSAM in
    ``sgenet_blocks.py``) are not networks and are left out."""
    import basicsr_sgenet  # noqa: F401  (plugin archs registered)
    from basicsr.utils.registry import ARCH_REGISTRY

    return sorted(name for name, cls in ARCH_REGISTRY
                  if cls.__module__.startswith('basicsr_sgenet.archs.') and cls.__module__.endswith('_arch'))


def size_multiple(network):
    """The size grid the network computes on: SGENet's ``size_multiple`` (2 ** number
    of downsamplings), SwinIR's ``window_size``, else 1."""
    for name in ('size_multiple', 'window_size'):
        value = getattr(network, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1


def load_network(spec):
    """``spec``'s network with its weights loaded (``spec.weights``), in eval mode: what
    the deblur CLI, export, the benchmark and the demo restore with."""
    from basicsr_sgenet.integration.weights import load_weights

    network = build_network(spec)
    if spec.weights:
        load_weights(network, spec.weights, spec.param_key, network_description=spec.describe())
    return network.eval()
