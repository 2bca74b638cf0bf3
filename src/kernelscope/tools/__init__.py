"""Command-line tools, one module per tool, thin over probes and sinks."""
