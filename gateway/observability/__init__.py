"""What the gateway tells its operators: ``logging`` (JSON lines, the access line) and
``metrics`` (Prometheus, across workers)."""
