"""Studies: a base option file, variants of it and seeds, trained through BasicSR's
trainer and reported as one table and one plot (``scripts/study.py``)."""
from basicsr_sgenet.tools.study.runner import StudyRunner, quick_study, run_options
from basicsr_sgenet.tools.study.spec import Budget, Study, Variant, read_study

__all__ = ['Budget', 'Study', 'StudyRunner', 'Variant', 'quick_study', 'read_study', 'run_options']
