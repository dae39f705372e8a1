"""Built-in plugins, grouped by kind: ``detectors/``, ``backbones/``, ``datasets/``, ``perturbations/`` and
``commands/`` (one module per method, backbone family, dataset family or command group).

:data:`dfzoo.manager.BUILTIN_PLUGINS` lists the modules that are registered. A leading underscore marks a
private helper of the plugins beside it (``detectors/_probe``, ``datasets/_genzoo``), nothing else. Plugins
import the core (``dfzoo``, ``dfzoo.data``, ``dfzoo.training``) and the harness (``dfzoo.benchmark``); neither
of those imports a plugin. Heavy libraries are imported inside factories, not at registration.
"""
