"""The embedded store's public API: SQL over what the agent recorded.

    from kernelscope import store
    t = store.query("SELECT comm, count(*) FROM proc_exec GROUP BY 1")   # pyarrow.Table
    df = store.df("SELECT * FROM proc_exec LIMIT 10")                     # pandas.DataFrame

When an agent is writing the store (it leaves `<store>.agent.json` with its pid and
HTTP address), the query goes to its `/api/query` (DuckDB lets one process write a
file; the agent answers from its own connection). Otherwise the file is opened
read-only. `agent=URL` forces the HTTP path.
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from kernelscope.store.duck import (DEFAULT_PATH, StoreError, check_read_only, open_read_only,
                                    run_file, run_sql)

__all__ = ["query", "df", "DEFAULT_PATH", "StoreError", "agent_url_for"]


class AgentUnreachable(StoreError):
    """No answer from the agent's HTTP API (as opposed to an error in the query)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def agent_url_for(path: str | os.PathLike) -> str | None:
    """The HTTP address of the live agent writing `path`, if there is one."""
    try:
        info = json.loads(run_file(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not _pid_alive(int(info.get("pid", 0) or 0)):
        return None
    return info.get("url")


def query_http(sql: str, url: str, timeout: float = 60.0):
    import pyarrow.ipc as ipc
    req = urllib.request.Request(url.rstrip("/") + "/api/query?format=arrow", data=sql.encode(),
                                 headers={"Content-Type": "text/plain"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", str(e))
        except ValueError:
            msg = str(e)
        raise StoreError(msg)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AgentUnreachable(f"cannot reach the agent at {url}: {reason}")
    return ipc.open_stream(io.BytesIO(body)).read_all()


def query(sql: str, path: str | os.PathLike | None = None, agent: str | None = None):
    """Run a read-only SQL statement on the store; returns a pyarrow.Table."""
    path = path or DEFAULT_PATH
    if agent:
        return query_http(sql, agent)
    url = agent_url_for(path)
    if url:
        try:
            return query_http(sql, url)
        except AgentUnreachable:
            pass   # a stale run file (the agent was killed): the file is free to read
    check_read_only(sql)
    con = open_read_only(path)
    try:
        return run_sql(con, sql)
    finally:
        con.close()


def df(sql: str, path: str | os.PathLike | None = None, agent: str | None = None):
    """Like query(), as a pandas DataFrame."""
    return query(sql, path, agent).to_pandas()
