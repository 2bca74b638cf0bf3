"""Agent configuration: one TOML (or YAML) file, validated at start.

Every key has a type, a default and a line of help (SCHEMA); unknown keys and wrong
types fail with one line naming the key. docs/agent.md lists the same keys.
"""

from __future__ import annotations

import re
import socket
from copy import deepcopy
from pathlib import Path

from kernelscope.errors import UsageError

DEFAULT_LISTEN = "127.0.0.1:9469"


class ConfigError(UsageError):
    pass


_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DUR_UNITS = {None: 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")


def parse_duration(v) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a duration")
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError("must not be negative")
        return float(v)
    m = _DUR.match(str(v))
    if not m:
        raise ValueError(f'expected a duration like "30s", "12h", "7d" or seconds, got {v!r}')
    return float(m.group(1)) * _DUR_UNITS[m.group(2)]


def parse_size(v) -> int:
    if isinstance(v, bool):
        raise ValueError("expected a size")
    if isinstance(v, int):
        if v < 0:
            raise ValueError("must not be negative")
        return v
    m = _SIZE.match(str(v))
    if not m:
        raise ValueError(f'expected a size like "512MiB", "2GB" or bytes, got {v!r}')
    unit = (m.group(2) or "b").lower()
    base = 1024 if "i" in unit else 1000
    power = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[0]]
    return int(float(m.group(1)) * base ** power)


def parse_listen(v) -> tuple[str, int]:
    if not isinstance(v, str) or ":" not in v:
        raise ValueError(f'expected "ADDRESS:PORT", got {v!r}')
    host, _, port = v.rpartition(":")
    host = host.strip("[]")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"port must be a number, got {port!r}")
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range: {p}")
    if not host:
        raise ValueError(f'address missing in {v!r} (use "0.0.0.0:{p}" for every interface)')
    return host, p


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _int(lo=None, hi=None):
    def f(v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected a whole number, got {v!r}")
        if lo is not None and v < lo or hi is not None and v > hi:
            raise ValueError(f"must be between {lo} and {hi}, got {v}")
        return v
    return f


def _float_pos(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise ValueError(f"expected a positive number of seconds, got {v!r}")
    return float(v)


def _str(v):
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {v!r}")
    return v


def _str_list(v):
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"expected a list of strings, got {v!r}")
    return v


def _opt_duration(v):
    return None if v in (0, "0", None, False) else parse_duration(v)


def _opt_size(v):
    return None if v in (0, "0", None, False) else parse_size(v)


def _auto_bool(v):
    if v == "auto" or isinstance(v, bool):
        return v
    raise ValueError(f'expected true, false or "auto", got {v!r}')


def _table(v):
    if not isinstance(v, dict):
        raise ValueError(f"expected a table of settings, got {v!r}")
    return v


# section -> key -> (parser, default, help)
SCHEMA: dict[str, dict[str, tuple]] = {
    "agent": {
        "listen": (lambda v: (parse_listen(v), v)[1], DEFAULT_LISTEN,
                   "HTTP address for /metrics and the API (ADDRESS:PORT)"),
        "host": (_str, "", "host name put on every record (default: this machine's name)"),
        "modules": (_str_list, None, "modules to run (default: every module this kernel supports)"),
        "poll_interval": (_float_pos, 0.2, "longest wait between ring-buffer drains, seconds"),
        "batch_wait": (_float_pos, 0.05, "after a wakeup, wait this long so records arrive in batches"),
        "flush_interval": (_float_pos, 1.0, "seconds between flushes to the store and sinks"),
        "cardinality_limit": (_int(1, 10_000_000), 2000,
                              "label sets per metric; more are folded into __overflow__"),
        "status_file": (_str, "", "write the final status (JSON) here on shutdown"),
    },
    "store": {
        "enabled": (_bool, True, "record module rows in the embedded DuckDB store"),
        "path": (_str, "/var/lib/kernelscope/kernelscope.duckdb", "the DuckDB file"),
        "max_age": (_opt_duration, 7 * 86400, 'delete rows older than this ("7d"; 0 keeps all)'),
        "max_size": (_opt_size, 2 * 1024 ** 3, 'delete the oldest rows above this size ("2GiB"; 0: no limit)'),
        "retention_interval": (lambda v: parse_duration(v), 60.0, "seconds between retention passes"),
        "max_pending": (_int(1000, 100_000_000), 50_000,
                        "rows buffered for the store at most; more are dropped and counted"),
    },
    "enrich": {
        "process": (_bool, True, "add exe, cmdline, user and parent from /proc"),
        "cgroups": (_bool, True, "add cgroup path, container id/runtime, pod uid/QoS, systemd unit"),
        "kubernetes": (_table, {}, "see [enrich.kubernetes]"),
    },
    "enrich.kubernetes": {
        "enabled": (_auto_bool, "auto", '"auto": only when KUBERNETES_SERVICE_HOST is set'),
        "api_url": (_str, "", "API server URL (default: from the in-cluster environment)"),
        "token_file": (_str, "/var/run/secrets/kubernetes.io/serviceaccount/token", "bearer token file"),
        "ca_file": (_str, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "CA bundle"),
        "node_name": (_str, "", "list only this node's pods (default: $NODE_NAME)"),
        "refresh_interval": (lambda v: parse_duration(v), 30.0, "seconds between pod list refreshes"),
    },
    "modules": {},          # [modules.<name>]: each module's OPTIONS
    "exporters": {
        "otlp": (_table, None, "OTLP exporter settings, passed to kernelscope.export.otlp:OtlpSink"),
        "clickhouse": (_table, None, "ClickHouse sink settings, passed to "
                                     "kernelscope.export.clickhouse:ClickHouseSink"),
    },
}


def defaults() -> dict:
    cfg: dict = {}
    for section, keys in SCHEMA.items():
        if "." in section:
            continue
        cfg[section] = {k: deepcopy(d) for k, (_p, d, _h) in keys.items() if d is not None}
    cfg["enrich"]["kubernetes"] = {k: d for k, (_p, d, _h) in SCHEMA["enrich.kubernetes"].items()}
    cfg["exporters"] = {}
    return cfg


def load_file(path: str) -> dict:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"config {path}: {e.strerror}")
    if p.suffix in (".yaml", ".yml"):
        import yaml
        try:
            doc = yaml.safe_load(raw) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"config {path}:{where} invalid YAML: {getattr(e, 'problem', e)}")
    else:
        import tomllib
        try:
            doc = tomllib.loads(raw.decode("utf-8", "replace"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path}: invalid TOML: {e}")
    if not isinstance(doc, dict):
        raise ConfigError(f"config {path}: the top level must be a table of sections")
    return doc


def _check_section(name: str, given: dict, out: dict) -> None:
    keys = SCHEMA[name]
    for k, v in given.items():
        if k not in keys:
            raise ConfigError(f"config: {name}.{k}: unknown key (known: {', '.join(sorted(keys))})")
        parser = keys[k][0]
        try:
            val = parser(v)
        except ValueError as e:
            raise ConfigError(f"config: {name}.{k}: {e}")
        out[k] = val


def validate(doc: dict, module_options: dict[str, dict]) -> dict:
    """The full config (defaults filled in) or ConfigError naming the bad key.

    `module_options`: module name -> its OPTIONS {key: (parser, default, help)}."""
    cfg = defaults()
    for section, body in doc.items():
        if section not in SCHEMA:
            raise ConfigError(f"config: {section}: unknown section "
                              f"(known: {', '.join(s for s in SCHEMA if '.' not in s)})")
        if not isinstance(body, dict):
            raise ConfigError(f"config: {section}: expected a table of settings")
        if section == "modules":
            mods = {}
            for mname, mbody in body.items():
                if mname not in module_options:
                    raise ConfigError(f"config: modules.{mname}: unknown module "
                                      f"(known: {', '.join(sorted(module_options))})")
                if not isinstance(mbody, dict):
                    raise ConfigError(f"config: modules.{mname}: expected a table of settings")
                opts = module_options[mname]
                m = {}
                for k, v in mbody.items():
                    if k not in opts:
                        raise ConfigError(f"config: modules.{mname}.{k}: unknown key"
                                          + (f" (known: {', '.join(sorted(opts))})" if opts else
                                             " (this module has no settings)"))
                    try:
                        m[k] = opts[k][0](v)
                    except ValueError as e:
                        raise ConfigError(f"config: modules.{mname}.{k}: {e}")
                mods[mname] = m
            cfg["modules"] = mods
            continue
        if section == "enrich" and "kubernetes" in body:
            body = dict(body)
            k8s = body.pop("kubernetes")
            if not isinstance(k8s, dict):
                raise ConfigError("config: enrich.kubernetes: expected a table of settings")
            _check_section("enrich.kubernetes", k8s, cfg["enrich"]["kubernetes"])
        if section == "exporters":
            for k, v in body.items():
                if k not in SCHEMA["exporters"]:
                    raise ConfigError(f"config: exporters.{k}: unknown exporter "
                                      f"(known: {', '.join(SCHEMA['exporters'])})")
                if not isinstance(v, dict):
                    raise ConfigError(f"config: exporters.{k}: expected a table of settings")
                cfg["exporters"][k] = dict(v)
            continue
        _check_section(section, body, cfg[section])
    for mname in cfg["agent"].get("modules") or []:
        if mname not in module_options:
            raise ConfigError(f"config: agent.modules: unknown module {mname!r} "
                              f"(known: {', '.join(sorted(module_options))})")
    for mname, opts in module_options.items():
        given = cfg["modules"].setdefault(mname, {})
        for k, (_p, d, _h) in opts.items():
            given.setdefault(k, d)
    if not cfg["agent"]["host"]:
        cfg["agent"]["host"] = socket.gethostname()
    return cfg
