"""The `workbench` command: one sub-command per noun, `--json` for machines, tables for people.

Each module in this package either exposes `app` (a Typer group added under the module's name:
`slices`, `jobs`, ...) or `register(root)` (top-level commands such as `devices`, `lab`,
`serve`). Errors of the workbench's own types print one line and exit 1; `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import typer
import typer.main

from workbench.errors import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="GPU slices, JAX and PyTorch jobs on Dask, kernels and profiles, from notebooks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_ORDER = ("devices", "slices", "jobs", "profiles", "kernels", "energy", "endpoints", "serve", "lab")


def _load_commands() -> None:
    names = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    for name in sorted(names, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n)):
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(app)
        if isinstance(getattr(module, "app", None), typer.Typer):
            app.add_typer(module.app, name=name)


_load_commands()


def _quiet_flags(command: Any) -> Any:
    """Typer's help shows `<bool>` beside every flag (`--json  <bool>`), which reads as if a flag took
    a value; an empty metavar shows nothing there. Applied to the built click command tree once."""
    params = list(command.params)
    help_option = command.get_help_option(typer.Context(command, info_name=command.name))
    for param in [*params, help_option]:
        if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _quiet_flags(sub)
    return command


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        # Without standalone mode click returns the code of a `typer.Exit` instead of exiting.
        command = _quiet_flags(typer.main.get_command(app))
        code = command.main(args=args, prog_name="workbench", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except WorkbenchError as exc:
        if debug:
            raise
        from workbench.cli._common import print_error

        print_error(str(exc))
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click's usage errors come through here with standalone_mode=False
        from workbench.cli._common import print_error

        usage = _usage_error(exc)
        if usage is not None:
            print_error(usage)
            sys.exit(2)
        if debug:
            raise
        print_error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        sys.exit(1)


def _usage_error(exc: Exception) -> str | None:
    """One line for a command-line usage error, or None when `exc` is not one.

    Typer vendors its own copy of click (`typer._click`), so its exceptions are not `click`'s; both
    are matched by the attributes every click `UsageError` has. A value that starts with `-` (a
    negative number, `-1`) is parsed as an option: the message says to put it after `--`.
    """
    if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code") and hasattr(exc, "ctx")):
        return None
    from workbench.units import echo

    ctx = exc.ctx
    command = ctx.command_path if ctx is not None else "workbench"
    option = getattr(exc, "option_name", None)
    if type(exc).__name__ == "NoSuchOption" and option:
        return (
            f"no such option {echo(option, 40)} for {command}; if it is a value, not an option, "
            f"put it after --, e.g. {command} -- {option[:40]}"
        )
    message = " ".join(str(exc.format_message()).split())
    if len(message) > 300:
        message = message[:299] + "…"
    return f"{message} (see {command} --help)"

if __name__ == "__main__":
    main()
