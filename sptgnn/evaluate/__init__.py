"""Evaluation orchestration and reports: cross-validation of SpTGNN and the baselines on shared folds
(:mod:`~sptgnn.evaluate.crossval`, :mod:`~sptgnn.evaluate.fold_tasks`), ablations, benchmark suites, run folders, the
Markdown and HTML reports.

The top of the stack: nothing in the package imports from here except the CLI and the public API. The models it
compares live in :mod:`sptgnn.models`, the scores it computes in :mod:`sptgnn.scores`.
"""
