"""The ``convertmodel`` command. Subcommands load lazily so ``--help`` stays instant.

Each subcommand lives in its own module (``convertmodel/cli/<name>.py``) exposing a click
command named ``command``. Errors become one line on stderr and a documented exit code
(docs/cli.md); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from convertmodel import errors

#: name -> (module, one-line help). Help text lives here so ``--help`` imports nothing else.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convertmodel.cli.convert", "Convert a model to .q8 (fp32) or another format."),
    "quantize": ("convertmodel.cli.quantize", "Quantize a model to int8 (BigDL local-window scheme)."),
    "verify": ("convertmodel.cli.verify", "Measure the fp32 -> int8 accuracy drop on data; gate CI on it."),
    "bench": ("convertmodel.cli.bench", "Benchmark fp32 against int8 side by side."),
    "inspect": ("convertmodel.cli.inspect", "Show ops, parameters, sizes and unsupported ops of a model."),
    "predict": ("convertmodel.cli.predict", "Run a model on an .npy array or an image."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _ = COMMANDS[cmd_name]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                return None
            raise
        cmd: click.Command = mod.command
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--version``: the version and the int8 kernels this machine runs (native ISA, or the numpy reference)."""
    if not value or ctx.resilient_parsing:
        return
    from convertmodel import __version__
    from convertmodel.cli.reports import int8_backend

    click.echo(f"convertmodel, version {__version__}\nint8 kernels: {int8_backend()}")
    ctx.exit(0)


#: The State of the running invocation (the error path reads it after click has left its contexts).
STATES: list[Any] = []


class State:
    """Global options shared by all subcommands (``ctx.obj``)."""

    def __init__(self, json_out: bool, quiet: bool, debug: bool, report: str | None = None) -> None:
        self.json = json_out or report == "-"  # --report - is stdout, never a file named "-"
        self.quiet = quiet
        self.debug = debug
        self.report = None if report == "-" else report
        self.emitted = False  # a JSON document went to stdout (an error then adds none: one document)
        self.model_path: str | None = None  # the model the command was given (for the JSON error object)
        STATES.append(self)


EPILOG = """Global options work in any position (before or after the command). Exit codes: 0 ok,
1 internal error, 2 usage error, 3 unsupported model, 4 invalid model, 5 corrupt or unreadable file
format, 6 accuracy gate failed, 7 I/O error, 8 bad data (input shape, labels, samples), 130 interrupted."""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "json_out", is_flag=True, help="Print a JSON report on stdout instead of tables.")
@click.option(
    "--report",
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Also write the JSON report to FILE (atomically); '-' means stdout, as --json.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables; errors only.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_version, help="Show the version and exit."
)
@click.pass_context
def cli(ctx: click.Context, json_out: bool, report: str | None, quiet: bool, debug: bool) -> None:
    """Convert, quantize to int8, verify and benchmark pretrained CNNs on CPU."""
    ctx.obj = State(json_out, quiet, debug, report)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, mapping errors to exit codes (and, with --json, a JSON error object)."""
    from convertmodel.cli.argv import hoist_globals, warn

    parsed = hoist_globals(list(sys.argv[1:] if argv is None else argv), _takes_value)
    warn(parsed.warnings)
    STATES.clear()
    try:
        code = _run(parsed)
    finally:
        STATES.clear()
    return sys.exit(code)


def _takes_value(command: str, option: str) -> bool:
    """Whether ``option`` of ``command`` consumes the next token (for hoisting the global options)."""
    if command not in COMMANDS:
        return False
    try:
        cmd = cli.get_command(click.Context(cli), command)
    except Exception:  # an import error surfaces when click runs the command
        return False
    for p in cmd.params if cmd is not None else ():
        if isinstance(p, click.Option) and option in (*p.opts, *p.secondary_opts):
            return not (p.is_flag or p.count)
    return False


def _fail(parsed: Any, error: BaseException, code: int, line: str | None) -> int:
    """One line on stderr (``line``; None: click shows its own); with --json the JSON error object on stdout."""
    st = STATES[-1] if STATES else None
    if parsed.json or (st is not None and st.json):
        from convertmodel.cli.reports import emit_error

        emit_error(st, parsed.command, error, code)
    if line is None:
        assert isinstance(error, click.ClickException)
        error.show()
    else:
        click.echo(line, err=True)
    return code


def _run(parsed: Any) -> int:
    debug = parsed.debug
    try:
        cli.main(args=parsed.args, prog_name="convertmodel", standalone_mode=False)
    except click.exceptions.Abort as e:
        if isinstance(e.__context__, EOFError):  # click turns any EOFError into Abort: a bug, not Ctrl-C
            if debug:
                raise e.__context__ from None
            msg = f"internal error: EOFError: {e.__context__} (rerun with --debug for the traceback)"
            return _fail(parsed, e.__context__, errors.EXIT_INTERNAL, msg)
        return _fail(parsed, e, errors.EXIT_INTERRUPTED, "interrupted")
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        return _fail(parsed, e, errors.EXIT_USAGE, None)
    except KeyboardInterrupt as e:
        return _fail(parsed, e, errors.EXIT_INTERRUPTED, "interrupted")
    except errors.ConvertModelError as e:
        if debug:
            raise
        return _fail(parsed, e, e.exit_code, f"error: {e}")
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _fail(parsed, e, errors.EXIT_IO, f"error: {where}{e.strerror or e}")
    except Exception as e:
        if debug:
            raise
        msg = f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)"
        return _fail(parsed, e, errors.EXIT_INTERNAL, msg)
    return 0
