"""Samples, dataset layouts and safe image decoding."""

from .decode import ImageDecodeError, load_image
from .sample import DatasetIndex, Sample, content_id

__all__ = ["DatasetIndex", "ImageDecodeError", "Sample", "content_id", "load_image"]
