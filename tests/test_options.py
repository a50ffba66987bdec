"""Option files: one reader with overrides, and the checks that run before anything is
created, each naming the file and the key."""
import os
import re

import pytest
import torch

from basicsr_sgenet.integration.pipeline import run_pipeline
from basicsr_sgenet.integration.errors import OptionError
from basicsr_sgenet.integration.options import check_options, load_options, read_option_file, with_overrides

from tiny_experiment import training_options, write_options, write_pairs


def test_overrides_take_dotted_keys_and_merge_mappings():
    opt = {'network_g': {'type': 'SGENet', 'channels': [96, 120, 144]}, 'train': {'total_iter': 10}}
    result = with_overrides(opt, {'network_g.channels': [8, 12, 16], 'train': {'warmup_iter': 5},
                                  'datasets.train.gt_size': 32})
    assert result == {'network_g': {'type': 'SGENet', 'channels': [8, 12, 16]},
                      'train': {'total_iter': 10, 'warmup_iter': 5}, 'datasets': {'train': {'gt_size': 32}}}
    assert opt['network_g']['channels'] == [96, 120, 144], 'the original is left alone'


def test_load_options_reads_basicsr_s_dialect(tmp_path):
    path = tmp_path / 'o.yml'
    path.write_text('name: x\nlr: !!float 2e-4\n')
    assert load_options(str(path), {'name': 'y'}) == {'name': 'y', 'lr': 2e-4}
    with pytest.raises(OptionError, match=f'Option file {path}2 does not exist'):
        read_option_file(f'{path}2')


@pytest.fixture
def tiny_opt(tmp_path):
    write_pairs(tmp_path / 'data', count=2, size=40)
    return training_options(tmp_path / 'data', 'checked', total_iter=2, checkpoint_every=2)


@pytest.mark.parametrize('overrides, message', [
    ({'network_g.channel': [8, 12, 16]}, r'network_g cannot be built \(SGENet: unknown argument\(s\) channel'),
    ({'datasets.train.dataroot_gt': 'nowhere/sharp'}, r'datasets.train.dataroot_gt: nowhere/sharp does not exist'),
    ({'datasets.train.gt_size': 64}, r'datasets.train.gt_size is 64, larger than the smallest training image side '
                                     r'\(40 px'),
    ({'train.mixed_precision': 'fp16'}, r'train.mixed_precision is fp16 on cpu, but fp16 needs a CUDA device'),
    ({'train.total_iter': 5}, r'train.scheduler.periods add up to 2, fewer than train.total_iter \(5\)'),
    ({'train.pixel_opt.type': 'CharbonierLoss'}, r"train.pixel_opt.type is 'CharbonierLoss', which is not a "
                                                 r'registered loss'),
    ({'path.pretrain_network_g': 'missing.pth'}, r'path.pretrain_network_g: missing.pth does not exist'),
])
def test_mistakes_are_one_line_before_anything_is_created(tmp_path, tiny_opt, overrides, message, monkeypatch,
                                                          capsys):
    if 'train.mixed_precision' in overrides and torch.cuda.is_available():
        pytest.skip('fp16 runs where there is CUDA')
    yml = write_options(tmp_path / 'checked.yml', with_overrides(tiny_opt, overrides))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        run_pipeline('train', ['-opt', str(yml)])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and error.count('\n') == 1
    assert error.startswith(f'error: Option file {yml}: ')
    assert re.search(message, error), error
    assert not os.path.exists(tmp_path / 'experiments') and not os.path.exists(tmp_path / 'tb_logger')


def test_a_truncated_lmdb_is_named_before_it_is_mapped(tmp_path, tiny_opt):
    lmdb_root = tmp_path / 'broken.lmdb'
    lmdb_root.mkdir()
    (lmdb_root / 'data.mdb').write_bytes(b'\0' * 100)
    (lmdb_root / 'meta_info.txt').write_text('a.png (40,40,3) 1\n')
    opt = with_overrides(tiny_opt, {'datasets.train.dataroot_gt': str(lmdb_root),
                                    'datasets.train.io_backend.type': 'lmdb'})
    with pytest.raises(OptionError, match=r'datasets.train.dataroot_gt: .*data.mdb is not an LMDB data file'):
        check_options(opt, 'o.yml')


def test_truncated_weights_are_named_before_anything_is_created(tmp_path, tiny_opt):
    from basicsr.utils.registry import ARCH_REGISTRY
    network = ARCH_REGISTRY.get('SGENet')(channels=[8, 12, 16], num_rdm=1)
    whole, legacy = tmp_path / 'whole.pth', tmp_path / 'legacy.pth'
    torch.save({'params': network.state_dict()}, whole)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    with pytest.raises(OptionError, match=rf'path.pretrain_network_g: {cut} is truncated or damaged'):
        check_options(with_overrides(tiny_opt, {'path.pretrain_network_g': str(cut)}), 'o.yml')
    # torch's legacy (pre-zip) format cannot be checked without loading it: left to the loader.
    torch.save({'params': network.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    for path in (whole, legacy):
        check_options(with_overrides(tiny_opt, {'path.pretrain_network_g': str(path)}), 'o.yml')
