"""Perturbation plugins: the image degradations the harness applies to test and training views."""
