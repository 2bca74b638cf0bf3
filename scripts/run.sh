#!/bin/bash
# Set everything up, then run the main job: the agent, on the embedded store.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cat >&2 <<'MSG'
kernelscope: starting the agent (Ctrl-C to stop). While it runs, from another shell:
  .venv/bin/kernelscope status                      what runs, what was skipped and why, counters
  .venv/bin/kernelscope query "SELECT comm, count(*) FROM proc_exec GROUP BY 1 ORDER BY 2 DESC"
  .venv/bin/kernelscope query "SELECT comm, raddr, rport, tx_bytes, rx_bytes FROM tcp_flow"
  curl -s http://127.0.0.1:9469/metrics             Prometheus metrics
The store is /var/lib/kernelscope/kernelscope.duckdb.
MSG
exec .venv/bin/kernelscope agent "$@"
