"""Built-in plugins: one module per method, dataset family or backbone family.

Every public module here is registered by :func:`dfzoo.manager.get_plugin_manager`. Modules import only
the dfzoo core at top level; heavy libraries are imported inside factories.
"""
