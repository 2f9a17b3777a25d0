"""tinyml-gateway: an edge gateway for TinyML sensor fleets."""

__version__ = "0.1.0"
