"""Agent config: defaults, types, and one-line errors naming the key."""

import subprocess
import sys

import pytest

from kernelscope.agent.config import ConfigError, parse_duration, parse_listen, parse_size, validate
from kernelscope.agent.modules import MODULES, module_options


def v(doc):
    return validate(doc, module_options())


def test_defaults():
    cfg = v({})
    assert cfg["agent"]["listen"] == "127.0.0.1:9469"
    assert cfg["store"]["path"] == "/var/lib/kernelscope/kernelscope.duckdb"
    assert cfg["store"]["max_age"] == 7 * 86400
    assert cfg["modules"]["exec"]["max_args"] == 64
    assert set(cfg["modules"]) == set(MODULES)
    assert cfg["exporters"] == {}
    assert cfg["agent"]["host"]


def test_values_parsed():
    cfg = v({"agent": {"listen": "0.0.0.0:1234", "modules": ["exec"], "host": "h1"},
             "store": {"max_age": "12h", "max_size": "512MiB"},
             "modules": {"exec": {"max_args": 8}},
             "exporters": {"otlp": {"endpoint": "localhost:4317"}}})
    assert cfg["store"]["max_age"] == 43200
    assert cfg["store"]["max_size"] == 512 * 1024 ** 2
    assert cfg["modules"]["exec"] == {"max_args": 8, "uid": -1}
    assert cfg["exporters"]["otlp"] == {"endpoint": "localhost:4317"}
    assert cfg["agent"]["host"] == "h1"


@pytest.mark.parametrize("doc, where", [
    ({"agent": {"lisen": "x"}}, "agent.lisen: unknown key"),
    ({"agent": {"listen": "9469"}}, "agent.listen"),
    ({"agent": {"listen": "127.0.0.1:99999"}}, "agent.listen: port out of range"),
    ({"agent": {"modules": ["exec", "nope"]}}, "agent.modules: unknown module 'nope'"),
    ({"agent": {"modules": "exec"}}, "agent.modules: expected a list of strings"),
    ({"agent": {"flush_interval": 0}}, "agent.flush_interval"),
    ({"store": {"max_age": "seven days"}}, "store.max_age: expected a duration"),
    ({"store": {"max_size": "big"}}, "store.max_size: expected a size"),
    ({"store": {"enabled": "yes"}}, "store.enabled: expected true or false"),
    ({"modules": {"exec": {"max_args": 100}}}, "modules.exec.max_args: must be between 1 and 64"),
    ({"modules": {"exec": {"color": 1}}}, "modules.exec.color: unknown key"),
    ({"modules": {"nope": {}}}, "modules.nope: unknown module"),
    ({"exporters": {"kafka": {}}}, "exporters.kafka: unknown exporter"),
    ({"exporters": {"otlp": "http://x"}}, "exporters.otlp: expected a table"),
    ({"enrich": {"kubernetes": {"enabled": "maybe"}}}, "enrich.kubernetes.enabled"),
    ({"nosuch": {}}, "nosuch: unknown section"),
])
def test_errors_name_the_key(doc, where):
    with pytest.raises(ConfigError) as e:
        v(doc)
    assert where in str(e.value)
    assert "\n" not in str(e.value)


def test_parsers():
    assert parse_duration("30s") == 30 and parse_duration("2m") == 120 and parse_duration(5) == 5
    assert parse_duration("1.5h") == 5400 and parse_duration("7d") == 7 * 86400
    assert parse_size("1GB") == 10 ** 9 and parse_size("2KiB") == 2048 and parse_size(10) == 10
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad in ("-1s", "x", "3 fortnights"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def _agent(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "kernelscope", "agent", *args],
                          capture_output=True, text=True, timeout=30)


def test_cli_bad_config_one_line(tmp_path):
    cfg = tmp_path / "ks.toml"
    cfg.write_text('[store]\nmax_age = "forever"\n')
    r = _agent("--config", str(cfg), tmp_path=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "store.max_age" in r.stderr and "Traceback" not in r.stderr


def test_cli_bad_toml_and_missing_file(tmp_path):
    cfg = tmp_path / "ks.toml"
    cfg.write_text("[agent\nlisten=1\n")
    r = _agent("--config", str(cfg), tmp_path=tmp_path)
    assert r.returncode == 2 and "invalid TOML" in r.stderr and r.stderr.count("\n") == 1
    r = _agent("--config", str(tmp_path / "missing.toml"), tmp_path=tmp_path)
    assert r.returncode == 2 and "No such file" in r.stderr and r.stderr.count("\n") == 1


def test_cli_yaml_and_check_config(tmp_path):
    cfg = tmp_path / "ks.yaml"
    cfg.write_text("agent:\n  modules: [exec]\nstore:\n  max_age: 1h\n")
    r = _agent("--config", str(cfg), "--check-config", "--listen", "127.0.0.1:1", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert '"max_age": 3600.0' in r.stdout and '"listen": "127.0.0.1:1"' in r.stdout
    r = _agent("--listen", "nope", "--check-config", tmp_path=tmp_path)
    assert r.returncode == 2 and "--listen" in r.stderr
