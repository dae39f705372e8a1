"""Small generated datasets for tests: the contract kit's generators (real-like smooth images, fakes with a
planted artefact), re-exported so the tests and plugin authors use one set."""

from dfzoo.testing import labelled_samples, planted_fake, smooth_image, write_folder_dataset

__all__ = ["labelled_samples", "planted_fake", "smooth_image", "write_folder_dataset"]
