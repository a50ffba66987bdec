"""The docs say what the code does, where a fact can be checked: every command line in the
README and docs/ names a command that exists and only flags it accepts; every exit status
the docs mention is one the commands use; every dotted option key they name is read
somewhere (an option file, the plugin or BasicSR)."""
import functools
import glob
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, python_env

DOCS = ['README.md'] + sorted(os.path.relpath(path, REPO_ROOT) for path in glob.glob(os.path.join(REPO_ROOT, 'docs', '*.md')))

def _console_scripts():
    """setup.py's console scripts as ``python -m`` argv: {'sgenet-deblur': ['-m', 'basicsr_sgenet.deblur'], ...}."""
    with open(os.path.join(REPO_ROOT, 'setup.py')) as f:
        entries = re.findall(r"'(sgenet-[\w-]+)=([\w.]+):main'", f.read())
    return {name: ['-m', module[:-len('.__main__')] if module.endswith('.__main__') else module]
            for name, module in entries}


CONSOLE_SCRIPTS = _console_scripts()
# Written wrong on purpose: the docs show what a misspelt key gets (a warning naming the right one).
DELIBERATE_MISSPELLINGS = {'train.mixed_precison'}
COMMAND = re.compile(r'(?:python3? |\.venv/bin/python )(-m basicsr_sgenet\.[a-z_.]+|(?:scripts|basicsr_sgenet)/\w+\.py)'
                     r'|\b(sgenet-\w+)\b')
FLAG = re.compile(r'(?<![\w-])(--?[a-zA-Z][\w-]*)')
# The exit statuses the commands use: 0 success, 2 a user's mistake or a fault (one error
# line), 130 interrupted (Ctrl-C).
EXIT_STATUSES = {0, 2, 130}


def _read(name):
    with open(os.path.join(REPO_ROOT, name)) as f:
        return f.read()


def command_lines():
    """(doc, command argv prefix, flags used) for every command line in the docs."""
    found = []
    for doc in DOCS:
        for line in _read(doc).splitlines():
            comment = line.find('  #')  # a shell comment after a command names no flags of it
            for match in COMMAND.finditer(line):
                if comment != -1 and match.start() > comment:
                    continue
                if match.group(2):
                    if match.group(2) not in CONSOLE_SCRIPTS:
                        found.append((doc, (match.group(2),), ()))
                        continue
                    argv = tuple(CONSOLE_SCRIPTS[match.group(2)])
                else:
                    argv = tuple(match.group(1).split())
                rest = line[match.end():].split('#')[0].split('|')[0]
                rest = re.split(r'\s(?:&&|;)\s|`', rest)[0]  # the command ends at the next one or the code span
                found.append((doc, argv, tuple(FLAG.findall(rest))))
    return found


@functools.lru_cache(maxsize=None)
def accepted_flags(argv):
    """The flags ``python <argv> --help`` lists, or None if the command does not exist."""
    result = subprocess.run([sys.executable] + list(argv) + ['--help'], cwd=REPO_ROOT, env=python_env(),
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        return None
    return set(FLAG.findall(result.stdout))


def test_the_docs_name_commands():
    assert len({argv for _, argv, _ in command_lines()}) >= 8


@pytest.mark.parametrize('argv', sorted({argv for _, argv, _ in command_lines()}), ids=' '.join)
def test_every_documented_command_exists_and_takes_its_documented_flags(argv):
    flags = accepted_flags(argv)
    assert flags is not None, f'{" ".join(argv)} --help fails: the docs name a command that does not run'
    unknown = sorted({(doc, flag) for doc, other, used in command_lines() if other == argv for flag in used
                      if flag not in flags})
    assert not unknown, f'{" ".join(argv)}: flags in the docs that it does not take: {unknown}'


def test_documented_exit_statuses_are_the_ones_used():
    wrong = []
    for doc in DOCS:
        for match in re.finditer(r'exit(?:s| status(?:es)?| code)?(?: with)? (\d+)\b', _read(doc)):
            if int(match.group(1)) not in EXIT_STATUSES:
                wrong.append(f'{doc}: "{match.group(0)}"')
    assert not wrong, wrong


def _source_texts():
    import basicsr
    folders = [os.path.join(REPO_ROOT, 'basicsr_sgenet'), os.path.dirname(basicsr.__file__),
               os.path.join(REPO_ROOT, 'options')]
    texts = []
    for folder in folders:
        for path in glob.glob(os.path.join(folder, '**', '*.py'), recursive=True) + \
                glob.glob(os.path.join(folder, '**', '*.yml'), recursive=True):
            with open(path, errors='replace') as f:
                texts.append(f.read())
    return '\n'.join(texts)


def test_documented_option_keys_are_read_somewhere():
    sections = ('train', 'val', 'datasets', 'path', 'network_g', 'logger', 'dist_params')
    key = re.compile(r'`((?:' + '|'.join(sections) + r')(?:\.\w+)+)(?:[:=][^`]*)?`')
    named = {match.group(1) for doc in DOCS for match in key.finditer(_read(doc))
             if not match.group(1).endswith(('.py', '.yml', '.md', '.pth'))} - DELIBERATE_MISSPELLINGS
    assert len(named) >= 5, named
    source = _source_texts()
    unread = sorted(name for name in named
                    if not re.search(r"""['"]""" + re.escape(name.split('.')[-1]) + r"""['"]|^\s*"""
                                     + re.escape(name.split('.')[-1]) + r':', source, re.M))
    assert not unread, f'option keys in the docs that no option file or code reads: {unread}'
