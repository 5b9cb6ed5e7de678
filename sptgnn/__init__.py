"""sptgnn: spatio-temporal heterogeneous graph neural networks for soil organic carbon mapping."""

__version__ = "0.1.0"
