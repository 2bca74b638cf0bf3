"""The `kernelscope` command: one subcommand per module in kernelscope.tools.

The command list is the file list of kernelscope/tools/ (a module defining
NAME, HELP, add_arguments and run); nothing registers itself on import, and a
tool's module is imported only when its command runs or help is asked for.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from functools import lru_cache
from pathlib import Path

from kernelscope.errors import KernelscopeError

TOOLS_DIR = Path(__file__).resolve().parent / "tools"
_NOT_COMMANDS = {"__init__", "common"}


@lru_cache(maxsize=1)
def tool_modules() -> dict[str, str]:
    """command -> module name: every public module in kernelscope/tools/."""
    return {p.stem.replace("_", "-"): p.stem for p in sorted(TOOLS_DIR.glob("*.py"))
            if p.stem not in _NOT_COMMANDS and not p.stem.startswith("_")}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _module(path: str):
    if "." not in path:
        path = f"kernelscope.tools.{path}"
    mod = importlib.import_module(path)
    if not hasattr(mod, "run"):
        raise ImportError(f"{path} is not a tool (no run())")
    return mod


def _tool_help(path: str) -> str:
    # help for the listing comes from the module without running anything heavy
    try:
        return _module(path).HELP
    except Exception as e:  # a broken tool must not break the whole CLI
        return f"(unavailable: {e})"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="kernelscope", description="eBPF observability for Linux")
    from kernelscope import __version__
    parser.add_argument("--version", action="version", version=f"kernelscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands = tool_modules()
    for name, path in commands.items():
        if only and name != only:
            sub.add_parser(name, help=_tool_help(path) if only is None else argparse.SUPPRESS)
            continue
        mod = _module(path)
        p = sub.add_parser(name, help=mod.HELP, description=(mod.__doc__ or "").strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = tool_modules()
    only = argv[0] if argv and argv[0] in commands else None
    try:
        parser = build_parser(only)
        args = parser.parse_args(argv)
        if not getattr(args, "_run", None):
            parser.print_help()
            return 2
        return int(args._run(args) or 0)
    except KernelscopeError as e:
        sys.stderr.write(f"kernelscope: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
    except OSError as e:   # e.g. a file kernelscope needs is unreadable for this user
        sys.stderr.write(f"kernelscope: {e.strerror or e}: {e.filename or ''}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
