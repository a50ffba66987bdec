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
    if not isinstance(total, int) or total < 1 or total % shares:
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
            from basicsr_sgenet.inference.weights import describe_mismatch, read_state_dict
            bare = self.get_bare_model(net)
            key = param_key if param_key in (None, 'params', 'params_ema') else None
            file_state, _ = read_state_dict(load_path, None if key == 'params_ema' else key)
            mismatch = describe_mismatch(bare.state_dict(), file_state) or str(err).splitlines()[0]
            raise CheckpointMismatchError(
                f'{load_path} does not fit the {type(bare).__name__} built from the option file: {mismatch}. '
                'A resumed or pretrained network must be built with the same network_g options.') from None

    return wrapper


def install():
    import basicsr.train
    from basicsr.models.base_model import BaseModel

    if getattr(basicsr.train.create_train_val_dataloader, '__wrapped__', None) is None:
        basicsr.train.create_train_val_dataloader = _split_total_batch_size_first(
            basicsr.train.create_train_val_dataloader)
    if getattr(BaseModel.load_network, '__wrapped__', None) is None:
        BaseModel.load_network = _explain_mismatch(BaseModel.load_network)
