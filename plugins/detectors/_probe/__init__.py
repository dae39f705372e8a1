"""Private helpers of the ``probe`` detector: backbone sets, feature reductions and classifiers.

Kept out of the plugin registry (the package name starts with "_"); heavy libraries are imported inside
functions so importing this package stays light.
"""
