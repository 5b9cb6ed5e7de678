"""Data: samples, named datasets and their loaders."""

from sptgnn.data.datasets import available_datasets, load_dataset
from sptgnn.data.limesoda import DatasetError
from sptgnn.data.samples import SamplesError, SoilSamples

__all__ = ["SoilSamples", "SamplesError", "DatasetError", "load_dataset", "available_datasets"]
