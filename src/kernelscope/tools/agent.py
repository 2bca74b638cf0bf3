"""agent: run kernelscope continuously: modules -> store, /metrics, HTTP API, exporters.

With no config: every module this kernel supports, the store at
/var/lib/kernelscope/kernelscope.duckdb, HTTP on 127.0.0.1:9469. See docs/agent.md.
"""

from __future__ import annotations

NAME = "agent"
HELP = "run the agent: modules, embedded store, Prometheus /metrics, HTTP API"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML (or .yaml) config file")
    p.add_argument("--listen", metavar="ADDR:PORT", help="HTTP address (overrides agent.listen)")
    p.add_argument("--store", metavar="PATH", help="DuckDB file (overrides store.path)")
    p.add_argument("--check-config", action="store_true",
                   help="validate the config, print it as JSON and exit")


def load_config(args) -> dict:
    from kernelscope.agent.config import ConfigError, load_file, parse_listen, validate
    from kernelscope.agent.modules import module_options
    doc = load_file(args.config) if args.config else {}
    cfg = validate(doc, module_options())
    if args.listen:
        try:
            parse_listen(args.listen)
        except ValueError as e:
            raise ConfigError(f"--listen: {e}")
        cfg["agent"]["listen"] = args.listen
    if args.store:
        cfg["store"]["path"] = args.store
        cfg["store"]["enabled"] = True
    return cfg


def run(args) -> int:
    import json
    import sys

    cfg = load_config(args)
    if args.check_config:
        print(json.dumps(cfg, indent=1, default=str))
        return 0
    from kernelscope.agent.daemon import Agent, keep_pandas_out, log, write_status_file
    keep_pandas_out()
    from kernelscope.tools.common import StopFlag

    stop = StopFlag()
    agent = Agent(cfg, args.config)
    agent.start()
    try:
        agent.run(stop)
    finally:
        final = agent.shutdown()
        received = sum(m.get("received", 0) for m in final["modules"].values())
        lost = sum(m.get("lost", 0) for m in final["modules"].values())
        store = final["sinks"].get("store", {})
        log(f"stopped: {received} events received, {lost} lost, "
            f"{store.get('written', 0)} rows written to the store")
        if cfg["agent"]["status_file"]:
            write_status_file(cfg["agent"]["status_file"], final)
        sys.stderr.flush()
    return 0
