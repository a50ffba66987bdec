"""What ``train.py`` and ``test.py`` share: check the option file, install the plugin's
patches with its settings, and hand over to BasicSR's pipeline from the current
directory (so ``experiments/``, ``results/`` and ``tb_logger/`` land where the user is).
A mistake the user can fix ends as one ``error:`` line and exit status 2."""
import argparse
import os
import sys

from basicsr_sgenet.integration.errors import OutputFolderError, exit_on_user_error


def _options_flags(argv):
    """The BasicSR flags that decide which options the run will see."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    parser.add_argument('--force_yml', nargs='+', default=None)
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


def prepare_run(pipeline_name, argv):
    """Check the option file (with ``--force_yml`` applied) and the output folders before
    anything is created, then install the patches with its ``dist_params``."""
    from basicsr_sgenet.integration import options, patches
    flags = _options_flags(argv)
    opt = {}
    if flags.opt:  # without -opt, BasicSR's own argument parser says what is missing
        opt = options.apply_force_yml(options.read_option_file(flags.opt), flags.force_yml)
        options.check_options(opt, flags.opt, is_train=pipeline_name == 'train')
        check_output_folders(pipeline_name, os.getcwd())
    dist_params = opt.get('dist_params') or {}
    patches.install(dist_backend=dist_params.get('backend'), dist_timeout_minutes=dist_params.get('timeout_minutes'))


def run_pipeline(pipeline_name, argv=None):
    """Run BasicSR's ``train_pipeline`` or ``test_pipeline`` with this plugin."""
    argv = sys.argv[1:] if argv is None else list(argv)
    exit_on_user_error(prepare_run, pipeline_name, argv)
    if pipeline_name == 'train':
        from basicsr.train import train_pipeline as pipeline
    else:
        from basicsr.test import test_pipeline as pipeline
    sys.argv = [sys.argv[0]] + argv  # BasicSR's parse_options reads sys.argv
    exit_on_user_error(pipeline, os.getcwd())
