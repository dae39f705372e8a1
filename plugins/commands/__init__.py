"""Command plugins: the ``dfzoo`` sub-commands."""
