"""The long-running agent: config, modules (probe + rows + metrics), store, HTTP API, lifecycle."""
