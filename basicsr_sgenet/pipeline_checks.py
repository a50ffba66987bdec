"""What this plugin adds to BasicSR's training pipeline, for any model it trains:

- ``datasets.train.total_batch_size``: the batch the recipe is defined by (what the
  paper's numbers depend on), split over however many processes run it;
- a checkpoint that does not fit the network (a resume state or pretrained weights from
  a different ``network_g``) is one clear error naming the file and keys, instead of
  torch's size-mismatch wall of text.
"""
import functools
import os

from basicsr_sgenet.errors import OptionError


class CheckpointMismatchError(RuntimeError):
    """A network checkpoint that does not fit the network built from the option file."""


def split_total_batch_size(opt):
    """Set ``batch_size_per_gpu`` from ``total_batch_size`` for this run's process count."""
    train = opt.get('datasets', {}).get('train')
    if not train or train.get('total_batch_size') is None:
        return
    total = train['total_batch_size']
    # BasicSR's batch per step: batch_size_per_gpu per process under torchrun, and
    # batch_size_per_gpu x num_gpu in one process with DataParallel.
    shares = opt['world_size'] if opt['dist'] else max(opt['num_gpu'], 1)
    if isinstance(total, bool) or not isinstance(total, int) or total < 1 or total % shares:
        raise OptionError(f'datasets.train.total_batch_size is {total!r}: it must be a positive integer '
                          f'divisible by the {shares} processes/GPUs this run uses.')
    per_gpu = total // shares
    given = train.get('batch_size_per_gpu')
    if given is not None and given != per_gpu:
        raise OptionError(f'datasets.train.batch_size_per_gpu is {given} but total_batch_size {total} over '
                          f'{shares} processes/GPUs gives {per_gpu}: set only one of the two.')
    train['batch_size_per_gpu'] = per_gpu


def _split_total_batch_size_first(create_train_val_dataloader):

    @functools.wraps(create_train_val_dataloader)
    def wrapper(opt, logger):
        split_total_batch_size(opt)
        return create_train_val_dataloader(opt, logger)

    return wrapper


def _describe_mismatch(net, load_path, param_key):
    """Which keys differ between ``net`` and the checkpoint, or None if that can't be told."""
    from basicsr_sgenet.inference.weights import describe_mismatch, read_state_dict
    try:
        # BasicSR falls back from params_ema to params when the former is absent.
        file_state, _ = read_state_dict(load_path, None if param_key == 'params_ema' else param_key)
    except Exception:  # noqa: BLE001 -- only a better message is at stake here
        return None
    return describe_mismatch(net.state_dict(), file_state)


def _explain_mismatch(load_network):

    @functools.wraps(load_network)
    def wrapper(self, net, load_path, strict=True, param_key='params'):
        if not os.path.isfile(load_path):
            raise CheckpointMismatchError(f'Network weights {load_path} do not exist (path.pretrain_network_* or '
                                          'the weights of the iteration being resumed).')
        try:
            return load_network(self, net, load_path, strict, param_key)
        except RuntimeError as err:
            if 'state_dict' not in str(err):
                raise
            bare = self.get_bare_model(net)
            mismatch = _describe_mismatch(bare, load_path, param_key) or str(err).strip().splitlines()[0]
            raise CheckpointMismatchError(
                f'{load_path} does not fit the {type(bare).__name__} built from the option file: {mismatch}. '
                'A resumed or pretrained network must be built with the same network_* options.') from None

    return wrapper


_installed = False


def install():
    global _installed
    if _installed:
        return
    from basicsr.models.base_model import BaseModel

    from basicsr_sgenet.compat import replace_train_function
    replace_train_function('create_train_val_dataloader', _split_total_batch_size_first)
    BaseModel.load_network = _explain_mismatch(BaseModel.load_network)
    _installed = True
