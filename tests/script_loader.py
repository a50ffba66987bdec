"""Import a file from scripts/ as a module (scripts/ is not a package)."""
import importlib.util
import os

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'scripts')


def load_script(name):
    spec = importlib.util.spec_from_file_location(f'scripts_{name}', os.path.join(SCRIPTS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
