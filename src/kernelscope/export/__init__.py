"""Where records and metrics leave the agent: sinks (store, OTLP, ClickHouse) and /metrics.

Nothing here registers itself on import; the agent builds the sinks its config names.
"""
