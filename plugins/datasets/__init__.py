"""Dataset plugins: folder and manifest layouts, and the built-in generator zoo (built by ``_genzoo``)."""
