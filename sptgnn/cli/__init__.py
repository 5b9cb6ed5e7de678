"""The ``sptgnn`` command line (typer): :mod:`~sptgnn.cli.app` defines the app and the evaluate/train/report
commands, one module per larger command (:mod:`~sptgnn.cli.predict`, :mod:`~sptgnn.cli.aggregate`,
:mod:`~sptgnn.cli.blocks`, :mod:`~sptgnn.cli.pretrain`), and :mod:`~sptgnn.cli.common` what they share: consoles,
one-line errors, options and the executor of ``--backend``. Typer wiring only: the work lives in the packages below.
"""

from sptgnn.cli.app import app

__all__ = ["app"]
