"""Detector plugins: one module per method (private helpers: ``_probe``, ``_reconstruction``, ``_univfd``)."""
