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

import typer

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


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        # Without standalone mode click returns the code of a `typer.Exit` instead of exiting.
        code = app(args=args, prog_name="workbench", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except WorkbenchError as exc:
        if debug:
            raise
        from workbench.cli._common import err_console

        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click's usage errors come through here with standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if debug:
            raise
        from workbench.cli._common import err_console

        err_console.print(
            f"[bold red]error:[/] unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            highlight=False, soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
