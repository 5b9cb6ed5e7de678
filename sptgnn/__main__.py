"""`python -m sptgnn` runs the command line."""

from sptgnn.cli import app

app(prog_name="sptgnn")
