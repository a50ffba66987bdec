"""Option files never run code: one safe YAML reader for every YAML the plugin reads, and for
BasicSR's own option parsing once the plugin is loaded (patches.install)."""
import os
from collections import OrderedDict

import pytest
import yaml

import basicsr.utils.options
from basicsr_sgenet.integration import patches
from basicsr_sgenet.integration.errors import OptionError
from basicsr_sgenet.integration import safe_yaml
from basicsr_sgenet.integration.options import read_option_file

from conftest import REPO_ROOT
from test_bad_inputs import ENTRY_POINTS, Runner, error_messages, listing, shared  # noqa: F401 (fixture)


def payload(target):
    """A YAML value that, read by a loader that builds Python objects, creates ``target``."""
    return f'!!python/object/apply:os.mkdir ["{target}"]'


STANDARD = ('name: x\nlr: !!float 2e-4\niters: !!int "7"\nlabel: !!str 12\nflag: !!bool true\nnothing: !!null ""\n'
            'betas: !!seq [0.9, 0.99]\nsub: !!map {b: 1, a: 2}\nbase: &base {k: 1}\nmerged: {<<: *base, j: 2}\n'
            'when: 2024-01-02\n')


def test_standard_tags_are_read_and_order_is_kept(tmp_path):
    path = tmp_path / 'o.yml'
    path.write_text(STANDARD)
    opt = read_option_file(str(path))
    assert opt == {'name': 'x', 'lr': 2e-4, 'iters': 7, 'label': '12', 'flag': True, 'nothing': None,
                   'betas': [0.9, 0.99], 'sub': {'b': 1, 'a': 2}, 'base': {'k': 1}, 'merged': {'k': 1, 'j': 2},
                   'when': __import__('datetime').date(2024, 1, 2)}
    assert list(opt) == ['name', 'lr', 'iters', 'label', 'flag', 'nothing', 'betas', 'sub', 'base', 'merged', 'when']
    assert list(opt['sub']) == ['b', 'a']


@pytest.mark.parametrize('tag, why', [
    ('!!python/object/apply:os.system ["true"]', '!!python/object/apply:os.system would run code'),
    ('!!python/name:os.system', '!!python/name:os.system would run code'),
    ('!!python/object/new:os.system ["true"]', '!!python/object/new:os.system would run code'),
    ('!!python/module:os', '!!python/module:os would run code'),
    ('!!python/tuple [0.9, 0.99]', '!!python/tuple is not a standard YAML tag'),
    ('!custom 3', '!custom is not a standard YAML tag'),
])
def test_any_other_tag_is_one_line_naming_the_file_and_line(tmp_path, tag, why):
    path = tmp_path / 'o.yml'
    path.write_text(f'name: x\ntrain:\n  optim_g: {tag}\n')
    with pytest.raises(OptionError) as error:
        read_option_file(str(path))
    message = str(error.value)
    assert message.startswith(f'{path}, line 3: the tag {why}; option files may only use standard YAML tags')
    assert '\n' not in message


def test_a_tag_payload_never_runs(tmp_path):
    target = tmp_path / 'created-by-the-file'
    path = tmp_path / 'o.yml'
    path.write_text(f'name: x\nlr: {payload(target)}\n')
    with pytest.raises(OptionError, match='would run code'):
        read_option_file(str(path))
    with pytest.raises(OptionError, match='would run code'):
        safe_yaml.load_file(str(path), safe_yaml.OrderedSafeLoader)
    assert not target.exists()


def test_basicsr_s_ordered_yaml_runs_tags_and_the_patch_refuses_them(tmp_path):
    target = tmp_path / 'created-by-basicsr'
    text = f'name: x\nlr: !!float 2e-4\nb: 1\na: 2\nx: {payload(target)}\n'
    yaml.load(text, Loader=patches.UPSTREAM['ordered_yaml']()[0])  # BasicSR 1.4.2 as it is
    assert target.is_dir(), 'the upstream problem: reading the file ran os.mkdir'
    os.rmdir(target)

    loader, dumper = basicsr.utils.options.ordered_yaml()  # patched
    with pytest.raises(OptionError, match='line 5: the tag !!python/object/apply:os.mkdir would run code'):
        yaml.load(text, Loader=loader)
    assert not target.exists()
    # Everything else as BasicSR reads it: OrderedDicts in file order, BasicSR's dumper.
    safe_text = text.rsplit('x:', 1)[0]
    ours = yaml.load(safe_text, Loader=loader)
    assert isinstance(ours, OrderedDict) and ours == yaml.load(safe_text, Loader=patches.UPSTREAM['ordered_yaml']()[0])
    assert list(ours) == ['name', 'lr', 'b', 'a']
    assert dumper is patches.UPSTREAM['ordered_yaml']()[1]


@pytest.mark.parametrize('name', sorted(n for n in os.listdir(os.path.join(REPO_ROOT, 'options')) if n.endswith('.yml')))
def test_shipped_option_files_read_the_same_as_with_basicsr_s_loader(name):
    path = os.path.join(REPO_ROOT, 'options', name)
    with open(path) as f:
        upstream = yaml.load(f, Loader=patches.UPSTREAM['ordered_yaml']()[0])
    assert safe_yaml.load_file(path, safe_yaml.OrderedSafeLoader) == upstream


# ----------------------------------------------------------------------------- every entry point


def _tagged_option_file(ws_root, target):
    path = os.path.join(ws_root, 'tagged.yml')
    with open(path, 'w') as f:
        f.write(f'name: tagged\nmodel_type: DeblurModel\nnetwork_g: {payload(target)}\n')
    return path


def _study_file(ws_root, target):
    path = os.path.join(ws_root, 'study.yml')
    base = os.path.join(REPO_ROOT, 'options', 'train_SGENet_GoPro.yml')
    with open(path, 'w') as f:
        f.write(f'name: s\nbase: {base}\nseeds: {payload(target)}\n')
    return path


COMMANDS = {
    'train (plugin file)': lambda ws, target: [os.path.join(REPO_ROOT, 'basicsr_sgenet', 'train.py'), '-opt',
                                               _tagged_option_file(ws, target)],
    'train': lambda ws, target: ENTRY_POINTS['train'] + ['-opt', _tagged_option_file(ws, target)],
    'test': lambda ws, target: ENTRY_POINTS['test'] + ['-opt', _tagged_option_file(ws, target)],
    'stock python -m basicsr.train': lambda ws, target: ['-m', 'basicsr.train', '-opt',
                                                         _tagged_option_file(ws, target)],
    'stock python -m basicsr.test': lambda ws, target: ['-m', 'basicsr.test', '-opt', _tagged_option_file(ws, target)],
    'deblur --opt': lambda ws, target: ENTRY_POINTS['deblur'] + ['-i', os.path.join(ws, 'in'), '-o',
                                                                 os.path.join(ws, 'out'), '--opt',
                                                                 _tagged_option_file(ws, target)],
    'export --opt': lambda ws, target: ENTRY_POINTS['export'] + ['--opt', _tagged_option_file(ws, target), '-o',
                                                                 os.path.join(ws, 'a.onnx')],
    'study': lambda ws, target: ENTRY_POINTS['study'] + [_study_file(ws, target), '--out', os.path.join(ws, 'out')],
}


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    runner = Runner(str(tmp_path_factory.mktemp('runner')))
    yield runner
    runner.close()


@pytest.mark.parametrize('command', COMMANDS)
def test_no_entry_point_runs_a_tag_payload(runner, tmp_path, command):
    ws = str(tmp_path)
    os.makedirs(os.path.join(ws, 'in'))
    target = os.path.join(ws, 'created-by-the-file')
    argv = COMMANDS[command](ws, target)
    before = listing(ws)
    status, _, stderr = runner.run(argv, ws, [])
    assert not os.path.exists(target), 'the option file ran code'
    errors = error_messages(stderr)
    assert len(errors) == 1 and 'Traceback' not in stderr, stderr
    tagged = os.path.join(ws, 'study.yml' if command == 'study' else 'tagged.yml')
    assert f'{tagged}, line 3: the tag !!python/object/apply:os.mkdir would run code' in errors[0], errors[0]
    assert status == 2, stderr
    assert listing(ws) == before
