"""Masked spatio-temporal pre-training of the stream encoders on unlabelled cells (issue 14): cells, masks, the
autoencoder, its trainer and the checkpoint a fine-tuning run loads (``model.pretrained``)."""

from sptgnn.pretrain.cells import Cells, PretrainError, config_cells
from sptgnn.pretrain.checkpoint import apply_pretrained, load_pretrained, save_pretrained

__all__ = ["Cells", "PretrainError", "apply_pretrained", "config_cells", "load_pretrained", "save_pretrained"]
