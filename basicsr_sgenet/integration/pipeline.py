"""What ``train.py`` and ``test.py`` share: check the option file, install the plugin's
patches with its settings, and hand over to BasicSR's pipeline from the current
directory (so ``experiments/``, ``results/`` and ``tb_logger/`` land where the user is).
A mistake the user can fix ends as one ``error:`` line and exit status 2, and so does a
fault while the run writes (full disk, no permission: ``WriteError``); Ctrl-C is one line
and exit status 130. Every file the run writes takes its name only when complete."""
import argparse
import errno
import os
import sys

from basicsr_sgenet.integration.errors import (NOTHING_HALF_WRITTEN, Interrupted, OutputFolderError, UserError,
                                               WriteError, exit_on_user_error)


def _options_flags(argv):
    """The BasicSR flags that decide which options the run will see."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    parser.add_argument('--force_yml', nargs='+', default=None)
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--auto_resume', action='store_true')
    parser.add_argument('--debug', action='store_true')
    return parser.parse_known_args(argv)[0]


# What BasicSR's pipelines create under the directory they run from.
OUTPUT_FOLDERS = {'train': ('experiments', 'tb_logger'), 'test': ('results',)}


def check_output_folders(pipeline_name, root):
    """Raise OutputFolderError unless BasicSR can create its output folders under ``root``."""
    from basicsr_sgenet.integration.output_folders import output_folder_problem
    for folder in OUTPUT_FOLDERS[pipeline_name]:
        problem = output_folder_problem(os.path.join(root, folder))
        if problem:
            raise OutputFolderError(f'{problem}; BasicSR writes {", ".join(OUTPUT_FOLDERS[pipeline_name])} under the '
                                    'current directory, so run from a folder you can write to.')


def one_gpu_unless_asked(opt, argv, launcher):
    """``argv`` with ``num_gpu`` pinned to 1 where a single-process run says ``num_gpu:
    auto`` on a host with several GPUs: BasicSR would wrap the network in DataParallel over
    all of them (slower than one process per GPU, and wrong under mixed precision). An
    integer ``num_gpu`` is taken as asked; torchrun/slurm runs use one GPU per process."""
    import torch
    if launcher != 'none' or opt.get('num_gpu', 'auto') != 'auto' or torch.cuda.device_count() < 2:
        return argv
    print(f'basicsr-sgenet: num_gpu is auto in one process: using 1 of the {torch.cuda.device_count()} GPUs. '
          'For all of them run torchrun --nproc_per_node=N ... --launcher pytorch (or set num_gpu for '
          'DataParallel).', flush=True)
    force = list(argv)
    if '--force_yml' in force:
        force.insert(force.index('--force_yml') + 1, 'num_gpu=1')
    else:
        force += ['--force_yml', 'num_gpu=1']
    return force


def prepare_run(pipeline_name, argv):
    """Check the option file (with ``--force_yml`` applied), its batch layout and the output
    folders before anything is created, then install the patches with its ``dist_params``.
    Returns the arguments to hand to BasicSR."""
    from basicsr_sgenet.integration import batches, options, patches
    from basicsr_sgenet.integration.option_keys import warn_unknown_keys
    flags = _options_flags(argv)
    opt = {}
    if flags.opt:  # without -opt, BasicSR's own argument parser says what is missing
        is_train = pipeline_name == 'train'
        opt = options.apply_force_yml(options.read_option_file(flags.opt), flags.force_yml)
        warn_unknown_keys(opt, flags.opt, lambda line: print(line, file=sys.stderr, flush=True))
        options.check_options(opt, flags.opt, is_train=is_train)
        argv = one_gpu_unless_asked(opt, argv, flags.launcher)
        if is_train:
            try:
                batches.check_batches(opt, *batches.run_layout(opt, flags.launcher))
            except options.OptionError as err:
                raise options.OptionError(f'Option file {flags.opt}: {err}') from None
        check_output_folders(pipeline_name, os.getcwd())
        name = opt.get('name')
        if flags.debug and isinstance(name, str) and not name.startswith('debug'):
            opt = dict(opt, name=f'debug_{name}')  # BasicSR's --debug renames the run
        options.check_run(opt, flags.opt, os.getcwd(), is_train, auto_resume=flags.auto_resume)
    dist_params = opt.get('dist_params') or {}
    patches.install(dist_backend=dist_params.get('backend'), dist_timeout_minutes=dist_params.get('timeout_minutes'))
    return argv


def run_pipeline(pipeline_name, argv=None):
    """Run BasicSR's ``train_pipeline`` or ``test_pipeline`` with this plugin."""
    argv = sys.argv[1:] if argv is None else list(argv)
    argv = exit_on_user_error(prepare_run, pipeline_name, argv)
    if pipeline_name == 'train':
        from basicsr.train import train_pipeline as pipeline
    else:
        from basicsr.test import test_pipeline as pipeline
    sys.argv = [sys.argv[0]] + argv  # BasicSR's parse_options reads sys.argv
    exit_on_user_error(_run_reporting_faults, pipeline, pipeline_name)


# What a run left when it stopped early, by pipeline.
LEFT_BEHIND = {'train': 'every checkpoint and training state saved so far is complete (continue with --auto_resume); '
                        + NOTHING_HALF_WRITTEN,
               'test': 'the images and log written so far are complete; ' + NOTHING_HALF_WRITTEN}


def _run_reporting_faults(pipeline, pipeline_name):
    """Run the pipeline; a write that fails (full disk, no permission) anywhere in BasicSR
    becomes a WriteError naming the file, Ctrl-C an Interrupted saying what is on disk."""
    try:
        pipeline(os.getcwd())
    except KeyboardInterrupt:
        raise Interrupted(LEFT_BEHIND[pipeline_name]) from None
    except UserError:
        raise
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        raise WriteError.from_os_error(err) from None


WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}
