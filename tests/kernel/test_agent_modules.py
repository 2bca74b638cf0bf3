"""Every module with real activity: TCP flows become rows, syscall/disk/run-queue maps become
metrics and summary rows; a module that cannot start is skipped with its reason."""

import os
import re
import socket
import threading

import pytest

from agent_support import AgentProc, wait_for

pytestmark = pytest.mark.kernel


def _metric(text: str, name: str, **labels) -> float | None:
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pat = re.compile(rf"^{re.escape(name)}(\{{{re.escape(sel)}\}})? (\S+)$" if sel else
                     rf"^{re.escape(name)} (\S+)$", re.M)
    m = pat.search(text)
    return float(m.groups()[-1]) if m else None


def test_all_modules(tmp_path, no_leaks):
    extra = ("[modules.syscalls]\nsummary_interval = 1\n[modules.disk]\nsummary_interval = 1\n"
             "[modules.runqueue]\nsummary_interval = 1\n[modules.flows]\nlive_interval = 0\n")
    with AgentProc(tmp_path, modules=("exec", "flows", "syscalls", "disk", "runqueue"), extra=extra) as agent:
        st = agent.status()
        running = {n for n, m in st["modules"].items() if m["state"] == "running"}
        assert running == {"exec", "flows", "syscalls", "disk", "runqueue"}, st["modules"]
        before = agent.metrics()
        n_getppid = 5000
        for _ in range(n_getppid):
            os.getppid()
        # 20 loopback connections to a server of ours
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        port = srv.getsockname()[1]

        def serve():
            for _ in range(20):
                c, _ = srv.accept()
                c.sendall(b"x" * 1000)
                c.close()
        t = threading.Thread(target=serve)
        t.start()
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", port))
            while c.recv(4096):
                pass
            c.close()
        t.join()
        srv.close()
        # disk: direct writes reach the block layer
        fd = os.open(tmp_path / "direct.bin", os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
        import mmap
        buf = mmap.mmap(-1, 1 << 16)
        buf.write(b"z" * (1 << 16))
        try:
            for _ in range(16):
                os.write(fd, buf)
        except OSError:
            pass   # no O_DIRECT on this filesystem
        os.fsync(fd)
        os.close(fd)

        def flows():
            from kernelscope import store
            if "tcp_flow" not in agent.status().get("store_rows", {}):
                return False
            t = store.query(f"SELECT count(*) AS n FROM tcp_flow WHERE lport = {port} AND "
                            "direction = 'server' AND rx_bytes = 0 AND tx_bytes = 1000", agent.store)
            return t.column("n")[0].as_py() == 20
        assert wait_for(flows, timeout=15)
        after = agent.metrics()
        d = _metric(after, "kernelscope_syscalls_total", syscall="getppid") - \
            (_metric(before, "kernelscope_syscalls_total", syscall="getppid") or 0)
        assert d >= n_getppid
        assert _metric(after, "kernelscope_runqueue_latency_seconds_count") > 0
        assert 'kernelscope_block_io_latency_seconds_bucket{disk="' in after
        assert _metric(after, "kernelscope_tcp_flows_total") >= 20

        def summaries():
            from kernelscope import store
            if not {"syscall_count_summary", "sched_runq_latency_summary"} <= set(agent.status()["store_rows"]):
                return False
            t = store.query("SELECT sum(calls) AS n FROM syscall_count_summary WHERE syscall = 'getppid'",
                            agent.store)
            r = store.query("SELECT sum(count) AS n FROM sched_runq_latency_summary", agent.store)
            return (t.column("n")[0].as_py() or 0) >= n_getppid and (r.column("n")[0].as_py() or 0) > 0
        assert wait_for(summaries, timeout=15)
        assert agent.stop() == 0


def test_unavailable_module_is_skipped_with_reason(tmp_path, monkeypatch, no_leaks):
    """In process: a module whose probe fails to load is skipped, the others run."""
    from kernelscope.agent import modules as mods
    from kernelscope.agent.config import validate
    from kernelscope.agent.daemon import Agent
    from kernelscope.agent.modules import ExecModule
    from kernelscope.errors import UnavailableError

    class Broken(ExecModule):
        name = "broken"

        def start(self):
            raise UnavailableError("probe proc_exec is unavailable on this kernel: hook x: no tp_btf")

    monkeypatch.setitem(mods.MODULES, "broken", "test:Broken")
    real = mods.module_class
    monkeypatch.setattr("kernelscope.agent.daemon.module_class",
                        lambda n: Broken if n == "broken" else real(n))
    cfg = validate({"agent": {"modules": ["exec", "broken"], "listen": "127.0.0.1:0"},
                    "store": {"path": str(tmp_path / "s.duckdb")}},
                   {n: {} if n == "broken" else mods.module_class(n).OPTIONS for n in mods.MODULES})
    agent = Agent(cfg)
    agent.start()
    try:
        st = agent.status()
        assert st["modules"]["exec"]["state"] == "running"
        assert st["modules"]["broken"] == {"state": "skipped", "reason":
                                           "probe proc_exec is unavailable on this kernel: hook x: no tp_btf"}
        text = agent.metrics_text()
        assert 'kernelscope_module_up{module="broken"} 0' in text
        assert 'kernelscope_module_up{module="exec"} 1' in text
        from kernelscope.tools.status import format_status
        assert "broken     skipped  probe proc_exec is unavailable" in format_status(st)
    finally:
        agent.shutdown()
