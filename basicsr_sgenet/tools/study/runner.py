"""Running a study: every variant x seed through BasicSR's trainer, resumable.

Output folder (default ``studies/<name>``, ``studies/<name>_quick`` with --quick)::

    data/                              the synthetic GoPro tree and its LMDBs (if the study renders data)
    runs/<variant>/seed<k>/            one BasicSR run: the child's working directory
        options.yml                    the exact option file trained with
        console.log                    everything the trainer printed (all attempts)
        experiments/ tb_logger/        BasicSR's own folders
        result.json                    written when the run has finished: what the report reads
    input_scores.json                  the metrics of the blurred input itself
    results.md  results.json  val_psnr.png

Stopping and restarting: a run with ``result.json`` is skipped; any other run starts
with ``--auto_resume``, which continues from its newest complete checkpoint (saved at
every validation). Changing a study file under finished runs is refused (the run's
``options.yml`` would no longer match) rather than mixing two set-ups in one table.
"""
import json
import os
import time
from dataclasses import dataclass, replace

from basicsr_sgenet.integration.errors import OptionError, PreparationError, StudyError
from basicsr_sgenet.integration.options import apply_overrides, read_option_file, write_option_file
from basicsr_sgenet.integration.output_folders import output_folder_problem
from basicsr_sgenet.tools.clock import format_clock
from basicsr_sgenet.tools.study.json_files import read_json, write_json
from basicsr_sgenet.tools.study.spec import Budget, SyntheticData
from basicsr_sgenet.tools.training_budget import stretch_schedule

QUICK_SYNTHETIC = dict(train_frames_per_photo=1, test_frames_per_photo=1, train_frame_size=(96, 128),
                       test_frame_size=(64, 96))
QUICK_OVERRIDES = {
    'datasets.train.gt_size': 32, 'datasets.train.batch_size_per_gpu': 2, 'datasets.train.total_batch_size': 2,
    'datasets.train.num_worker_per_gpu': 0, 'datasets.train.dataset_enlarge_ratio': 1,
    'train.warmup_iter': -1, 'logger.use_tb_logger': False,
}


@dataclass
class PlannedRun:
    variant: str
    seed: int
    directory: str
    options: dict

    @property
    def label(self):
        return f'{self.variant} seed {self.seed}'

    @property
    def experiment(self):
        return self.options['name']

    @property
    def result_path(self):
        return os.path.join(self.directory, 'result.json')

    @property
    def finished(self):
        return os.path.isfile(self.result_path)


def quick_study(study):
    """The study shrunk to a smoke test: tiny synthetic data (whatever the study trains
    on), 2 iterations, the first seed, every variant."""
    from basicsr_sgenet.data.preparation import SubimageGrid
    from basicsr_sgenet.data.synthetic_gopro import SyntheticGoProSettings

    if study.data is not None:
        settings = replace(study.data.settings, **QUICK_SYNTHETIC,
                           train_photos=study.data.settings.train_photos[:2],
                           test_photos=study.data.settings.test_photos[:1])
    else:
        settings = SyntheticGoProSettings(train_photos=('astronaut', 'coffee'), test_photos=('chelsea',),
                                          **QUICK_SYNTHETIC)
    return replace(study, name=f'{study.name}_quick', seeds=study.seeds[:1], budget=Budget(2, 2, 1),
                   data=SyntheticData(settings, SubimageGrid(64, 32), 0),
                   overrides={**study.overrides, **QUICK_OVERRIDES, **study.quick_overrides})


def _absolute(path, start):
    path = os.path.expanduser(str(path))
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(start, path))


def run_options(study, variant, seed, dataset_root=None, start_dir=None):
    """The option dict of one run: base file, study overrides, variant overrides, then
    what the runner owns (name, seed, budget, data paths)."""
    start_dir = start_dir or os.getcwd()
    try:
        opt = apply_overrides(apply_overrides(read_option_file(variant.base or study.base), study.overrides),
                              variant.overrides)
    except OptionError as err:
        raise StudyError(f'Study file {study.path}: variant {variant.name}: {err}') from None
    budget = study.budget
    stretch_schedule(opt.setdefault('train', {}), budget.iters)
    opt['name'] = f'{study.name}_{variant.name}_s{seed}'
    opt['manual_seed'] = seed
    opt.setdefault('val', {})['val_freq'] = budget.val_every
    logger = opt.setdefault('logger', {})
    logger.update(print_freq=budget.print_every, save_checkpoint_freq=budget.val_every)
    opt.setdefault('path', {})['resume_state'] = None
    datasets = opt.get('datasets') or {}
    for phase, dataset in datasets.items():
        if not isinstance(dataset, dict):
            continue
        if dataset_root is not None:
            split = 'train' if phase == 'train' else 'test'
            dataset['dataroot_gt'] = os.path.join(dataset_root, split, 'sharp.lmdb')
            dataset['dataroot_lq'] = os.path.join(dataset_root, split, 'blur.lmdb')
            dataset['io_backend'] = {'type': 'lmdb'}
        for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
            if dataset.get(key):  # the child runs in the run's folder: relative paths meant the user's
                dataset[key] = _absolute(dataset[key], start_dir)
    if 'train' not in datasets or not any(phase.startswith('val') for phase in datasets):
        raise StudyError(f'Study file {study.path}: variant {variant.name}: the options need datasets.train and a '
                         'validation set (datasets.val): the study scores the runs on it.')
    if not (opt.get('val') or {}).get('metrics'):
        raise StudyError(f'Study file {study.path}: variant {variant.name}: val.metrics is empty; the study needs '
                         'at least one metric (e.g. psnr).')
    return opt


OPTIONS_HEADER = """\
# Written by the study runner (scripts/study.py {study}) for variant {variant}, seed {seed}:
# {base} with the study's and the variant's overrides. Re-run this one run with
#   cd {directory} && python -m basicsr_sgenet.train -opt options.yml --auto_resume
"""


class StudyRunner:
    """Plans, runs and reports one study. ``log`` receives every line meant for the user."""

    def __init__(self, study, output, variants=None, log=print, threads=None):
        self.study = study
        self.output = os.path.abspath(output)
        self.log = log
        self.threads = threads
        self.variants = self._selected(variants)

    def _selected(self, names):
        if not names:
            return list(self.study.variants)
        known = [variant.name for variant in self.study.variants]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise StudyError(f'--variants: {", ".join(unknown)} not in the study {self.study.path} (variants: '
                             f'{", ".join(known)}).')
        return [variant for variant in self.study.variants if variant.name in names]

    # ------------------------------------------------------------------ set-up

    def prepare_data(self):
        """Render the study's synthetic data (reused when unchanged); returns its LMDB root or None."""
        from basicsr_sgenet.data.synthetic_gopro import build_synthetic_gopro

        data = self.study.data
        if data is None:
            return None
        root = os.path.join(self.output, 'data')
        try:
            paths = build_synthetic_gopro(os.path.join(root, 'GOPRO_synthetic'), os.path.join(root, 'datasets'),
                                          data.settings, data.grid, seed=data.seed,
                                          workers=min(2, os.cpu_count() or 1), log=lambda *_: None)
        except PreparationError as err:
            raise StudyError(f'Study file {self.study.path}: data: {err}') from None
        return paths.datasets

    def plan(self, dataset_root):
        """Every run of the study (all variants: the report covers every variant run so far)."""
        return [PlannedRun(variant.name, seed, os.path.join(self.output, 'runs', variant.name, f'seed{seed}'),
                           run_options(self.study, variant, seed, dataset_root))
                for variant in self.study.variants for seed in self.study.seeds]

    def check(self, runs, check_data=True):
        """Check each run's options as a training run checks them, before any training."""
        from basicsr_sgenet.integration.options import check_options

        for run in runs:
            try:
                check_options(run.options, f'study {self.study.path}, variant {run.variant}', is_train=True,
                              check_data=check_data)
            except OptionError as err:
                raise StudyError(str(err)) from None

    def _selected_runs(self, runs):
        names = {variant.name for variant in self.variants}
        return [run for run in runs if run.variant in names]

    def _write_options(self, run):
        """Write the run's option file; refuse if an earlier attempt used different options."""
        path = os.path.join(run.directory, 'options.yml')
        if os.path.isfile(path):
            if read_option_file(path) != json.loads(json.dumps(run.options)):  # as YAML reads it back
                raise StudyError(f'{run.directory} was run with other options than {self.study.path} now gives '
                                 '(the study file or its base changed). Delete that folder to redo the run, or use '
                                 'another --out.')
            return path
        header = OPTIONS_HEADER.format(study=self.study.path, variant=run.variant, seed=run.seed,
                                       base=self.study.variant(run.variant).base or self.study.base,
                                       directory=run.directory)
        write_option_file(path, run.options, header)
        return path

    # ------------------------------------------------------------------ running

    def run(self):
        """Run every unfinished run, then write the report; returns the report's paths."""
        from basicsr_sgenet.tools.study.report import input_scores, network_costs, write_report

        # Everything but the study's own data (rendered below) is checked before anything is written.
        problem = output_folder_problem(self.output)
        if problem:
            raise StudyError(f'--out: {problem}')
        self.check(self._selected_runs(self.plan(None)), check_data=self.study.data is None)
        try:
            os.makedirs(self.output, exist_ok=True)
        except OSError as err:
            raise StudyError(f'--out: {self.output} cannot be created ({err.strerror})') from None
        self.log(f'Study {self.study.name}: {len(self.variants)} variant(s) x {len(self.study.seeds)} seed(s), '
                 f'{self.study.budget.iters} iterations each, into {self.output}')
        dataset_root = self.prepare_data()
        runs = self.plan(dataset_root)
        selected_names = {variant.name for variant in self.variants}
        selected = self._selected_runs(runs)
        if self.study.data is not None:
            self.check(selected)  # now with the data it rendered
        for run in selected:
            self._write_options(run)
        reference = input_scores(runs[0].options, os.path.join(self.output, 'input_scores.json'))
        pending = [run for run in selected if not run.finished]
        for run in selected:
            if run.finished:
                self.log(f'[{run.label}] finished earlier: skipped')
        self._remaining_runs = len(pending)
        self._run_seconds = []  # wall time of the runs trained by this invocation: the study's ETA
        for index, run in enumerate(pending, 1):
            self._train(run, index, len(pending))
            self._remaining_runs -= 1
        reported_variants = selected_names | {run.variant for run in runs if run.finished}
        reported = [run for run in runs if run.variant in reported_variants]
        return write_report(self.study, self.output, reported, network_costs(self.study, reported), reference,
                            log=self.log)

    def _train(self, run, index, count):
        from basicsr_sgenet.tools.study.report import collect_result
        from basicsr_sgenet.tools.training_process import train_in_child

        state_path = os.path.join(run.directory, 'run_state.json')
        state = read_json(state_path) or {'seconds': 0.0, 'attempts': 0}
        state['attempts'] += 1
        prefix = f'[{index}/{count} {run.label}]'
        resumed = ' (resuming)' if state['attempts'] > 1 else ''
        self.log(f'{prefix} training {self.study.budget.iters} iterations{resumed}; log: '
                 f'{os.path.join(run.directory, "console.log")}')
        started = time.time()
        previous_seconds = state['seconds']
        last_saved = [started]

        def on_progress(progress):
            state['seconds'] = previous_seconds + time.time() - started
            if time.time() - last_saved[0] > 5:
                write_json(state_path, state)
                last_saved[0] = time.time()
            self.log(f'{prefix} {self._progress_text(progress, started)}')

        reported = set()

        def on_validation(validation):
            metrics = '  '.join(f'{name} {value:.4g}' for name, value in validation.metrics.items())
            # BasicSR validates once more after the last iteration; its log ties that to the last progress line.
            where = ('after the last iteration' if validation.iteration in reported
                     else f'at iter {validation.iteration}')
            reported.add(validation.iteration)
            self.log(f'{prefix} validation {where}: {metrics}')

        try:
            result = train_in_child('options.yml', run.directory, os.path.join(run.directory, 'console.log'),
                                    auto_resume=True, on_progress=on_progress, on_validation=on_validation,
                                    threads=self.threads)
        finally:
            state['seconds'] = previous_seconds + time.time() - started
            write_json(state_path, state)
        if result.returncode != 0:
            last = [line for line in result.tail.splitlines() if line.strip()]
            raise StudyError(f'run {run.label} failed (exit code {result.returncode}): '
                             f'{last[-1] if last else "no output"}. Full log: '
                             f'{os.path.join(run.directory, "console.log")}')
        if state['attempts'] == 1:
            self._run_seconds.append(time.time() - started)
        collected = collect_result(run, state['seconds'])
        write_json(run.result_path, collected)
        final = '  '.join(f'{name} {value:.4g}' for name, value in collected['final'].items())
        self.log(f'{prefix} done in {format_clock(state["seconds"])}: {final}')

    def _progress_text(self, progress, started):
        total = self.study.budget.iters
        text = f'iter {progress.iteration}/{total}'
        if progress.loss is not None:
            text += f'  loss {progress.loss:.4g}'
        elapsed = time.time() - started
        done_here = max(progress.iteration, 1)
        per_iter = progress.seconds_per_iter or elapsed / done_here
        run_left = max(total - progress.iteration, 0) * per_iter
        text += f'  run ETA {format_clock(run_left)}'
        if self._remaining_runs > 1:
            # After a whole run, its wall time (start-up and validations included) is the better guess.
            per_run = sum(self._run_seconds) / len(self._run_seconds) if self._run_seconds else total * per_iter
            study_left = run_left + (self._remaining_runs - 1) * per_run
            text += f'  study ETA {format_clock(study_left)}'
        return text

