"""Verification of node decisions by a model run on the gateway (docs/verification.md).

``registry.py`` reads and checks the configured model files, ``stage.py`` is what the
pipeline calls: it hands each batch's windows to a worker process (``worker.py``) and
waits for the verdicts (``verdict.py``) a bounded time. Only the worker imports numpy
and a runtime (``runtime.py``): the gateway's own process stays as lean with
verification on as off. Import the submodules themselves; this package imports nothing.
"""
