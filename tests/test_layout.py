"""The package layout docs/architecture.md draws holds: each folder imports only the layers
its role allows, entry modules never import each other, and ``import basicsr_sgenet`` stays
light (no optional extras, no tools)."""
import ast
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, python_env

PACKAGE = os.path.join(REPO_ROOT, 'basicsr_sgenet')
PLUGIN = {'archs', 'data', 'losses', 'metrics', 'models'}
ENTRY_MODULES = {'train', 'test', 'deblur', 'export'}
# Which layers each layer may import (docs/architecture.md, "The map"). The plugin and its
# BasicSR integration form the core and use each other; everything else is built on them.
ALLOWED = {
    'core': {'core'},
    'inference': {'core', 'inference'},
    'tools': {'core', 'inference', 'tools'},
    'app': {'core', 'inference', 'app'},
    'entry': {'core', 'inference', 'tools'},
}


# The one import across the rules: the web page runs the deblur command itself (its argument
# parser and its per-image code), so a result from the page equals the CLI's bit for bit.
EXCEPTIONS = {('basicsr_sgenet.app.session', 'basicsr_sgenet.deblur')}


def layer_of(module):
    """'core', 'inference', 'tools', 'app' or 'entry' for a dotted module name in the package."""
    parts = module.split('.')[1:]
    if not parts or parts[0] in PLUGIN | {'integration', '_autoimport'}:
        return 'core'
    if parts[0] in ENTRY_MODULES:
        return 'entry'
    return parts[0]


def package_modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, '.')
                yield path, dotted[:-len('.__init__')] if dotted.endswith('.__init__') else dotted


def imported_modules(path, module):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == 'basicsr_sgenet':
                yield from (f'basicsr_sgenet.{alias.name}' for alias in node.names)
            elif node.module.startswith('basicsr_sgenet.'):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith('basicsr_sgenet.'))


def test_every_folder_imports_only_the_layers_below_it():
    wrong = []
    for path, module in package_modules():
        source_layer = layer_of(module)
        for target in imported_modules(path, module):
            target_layer = layer_of(target)
            if target_layer not in ALLOWED[source_layer] and (module, target) not in EXCEPTIONS:
                wrong.append(f'{module} ({source_layer}) imports {target} ({target_layer})')
    assert not wrong, '\n'.join(wrong)


def test_entry_modules_do_not_import_each_other():
    wrong = [f'{module} imports {target}' for path, module in package_modules()
             for target in imported_modules(path, module)
             if layer_of(target) == 'entry' and (module, target) not in EXCEPTIONS]
    assert not wrong, '\n'.join(wrong)


def test_the_layer_check_catches_a_wrong_import():
    """The check above can fail: an integration module importing the tools is caught."""
    assert layer_of('basicsr_sgenet.integration.options') == 'core'
    assert 'tools' not in ALLOWED[layer_of('basicsr_sgenet.integration.options')]
    assert layer_of('basicsr_sgenet.deblur') == 'entry' and layer_of('basicsr_sgenet.inference.network') == 'inference'


@pytest.mark.parametrize('statement', ['import basicsr_sgenet', 'import basicsr_sgenet.inference.backends'])
def test_importing_the_plugin_stays_light(statement):
    heavy = ('onnx', 'onnxruntime', 'openvino', 'matplotlib', 'gradio', 'basicsr_sgenet.tools')
    code = (f'{statement}\nimport sys\n'
            f'print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r} or m.startswith({heavy[-1]!r}))))')
    result = subprocess.run([sys.executable, '-c', code], env=python_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ''
