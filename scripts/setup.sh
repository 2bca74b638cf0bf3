#!/bin/bash
# Set up kernelscope on Debian 12 as root: system packages, a venv in .venv,
# the package (editable) and its compiled probes.  `--test` adds what the test
# suite and benchmarks need (servers, clients, peers used as oracles).
set -euo pipefail
cd "$(dirname "$0")/.."

CORE_PKGS=(clang llvm libbpf-dev libbpf1 bpftool iproute2 python3 python3-venv python3-pip gcc make graphviz)
TEST_PKGS=(nftables strace bpftrace libbpf-tools curl nginx wrk redis-server
           postgresql postgresql-client prometheus clickhouse-server util-linux procps
           linux-perf tcpdump hyperfine)

pkgs=("${CORE_PKGS[@]}")
[[ "${1:-}" == "--test" ]] && pkgs+=("${TEST_PKGS[@]}")

if [[ $(id -u) -ne 0 ]]; then
    echo "setup: run as root (it installs Debian packages and loads BPF programs)" >&2
    exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # services must not start at install time on a build box; tests start their own
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
extras="agent"
[[ "${1:-}" == "--test" ]] && extras="agent,test"
.venv/bin/python -m pip install -q -e ".[${extras}]"
.venv/bin/python -m kernelscope.build
echo "setup: ready (.venv/bin/kernelscope)" >&2
