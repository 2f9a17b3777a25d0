"""Where records go. Each sink delivers from its own outbox cursor, so a slow or
absent peer holds back only itself (docs/architecture.md, "Sinks")."""
