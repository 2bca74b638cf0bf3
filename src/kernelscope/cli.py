"""The `kernelscope` command: one subcommand per module in kernelscope.tools.

Tool modules are listed here (not registered on import) and imported only
when their command runs, so `kernelscope <tool>` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kernelscope.errors import KernelscopeError

# command -> module under kernelscope.tools (or a dotted path); help text lives in the module
TOOLS = {
    "doctor": "doctor",
    "execsnoop": "execsnoop",
}
# other parts of the tree add their commands here: name -> "kernelscope.x.y"
EXTRA_COMMANDS: dict[str, str] = {}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _module(path: str):
    if "." not in path:
        path = f"kernelscope.tools.{path}"
    return importlib.import_module(path)


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
    commands = {**TOOLS, **EXTRA_COMMANDS}
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
    commands = {**TOOLS, **EXTRA_COMMANDS}
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


if __name__ == "__main__":
    sys.exit(main())
