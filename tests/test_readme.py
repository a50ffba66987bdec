"""The README's set-up commands stay true: CI runs its test command verbatim, and every
script, option file and doc it names exists."""
import os
import re

from conftest import REPO_ROOT


def _read(*parts):
    with open(os.path.join(REPO_ROOT, *parts)) as f:
        return f.read()


def _readme_commands():
    """The indented command lines at the top of the README, before the first rule."""
    head = _read('README.md').split('\n---\n')[0]
    return [line.strip() for line in head.splitlines() if line.startswith('    ')]


def test_readme_starts_with_the_demo_and_test_commands():
    demo, tests = _readme_commands()
    assert demo.endswith('.venv/bin/python scripts/demo.py')
    assert tests.endswith('.venv/bin/python -m pytest -q')
    assert demo.rsplit('&&', 1)[0] == tests.rsplit('&&', 1)[0], 'both set up the same way'


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = [line.strip() for line in _read('.ci', 'run').splitlines()]
    tests_command = _readme_commands()[1]
    assert tests_command in ci_lines


def test_files_the_readme_names_exist():
    readme = _read('README.md')
    named = set(re.findall(r'\b((?:scripts|options|docs|basicsr_sgenet)/[\w./-]+\.(?:py|yml|md))', readme))
    assert named, 'the README names no files?'
    missing = sorted(path for path in named if not os.path.exists(os.path.join(REPO_ROOT, path)))
    assert not missing, f'README names files that do not exist: {missing}'
