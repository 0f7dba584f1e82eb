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


class State:
    """Global options shared by all subcommands (``ctx.obj``)."""

    def __init__(self, json_out: bool, quiet: bool, debug: bool) -> None:
        self.json = json_out
        self.quiet = quiet
        self.debug = debug


EPILOG = """Exit codes: 0 ok, 1 internal error, 2 usage error, 3 unsupported model, 4 invalid model,
5 corrupt or unreadable file format, 6 accuracy gate failed, 7 I/O error, 130 interrupted."""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "json_out", is_flag=True, help="Print a JSON report on stdout instead of tables.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or tables; errors only.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="convertmodel")
@click.pass_context
def cli(ctx: click.Context, json_out: bool, quiet: bool, debug: bool) -> None:
    """Convert, quantize to int8, verify and benchmark pretrained CNNs on CPU."""
    ctx.obj = State(json_out, quiet, debug)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, mapping errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="convertmodel", standalone_mode=False)
    except click.exceptions.Abort as e:
        if isinstance(e.__context__, EOFError):  # click turns any EOFError into Abort: a bug, not Ctrl-C
            if debug:
                raise e.__context__ from None
            click.echo(f"internal error: EOFError: {e.__context__} (rerun with --debug for the traceback)", err=True)
            return sys.exit(errors.EXIT_INTERNAL)
        click.echo("interrupted", err=True)
        return sys.exit(errors.EXIT_INTERRUPTED)
    except click.exceptions.Exit as e:
        return sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        return sys.exit(errors.EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return sys.exit(errors.EXIT_INTERRUPTED)
    except errors.ConvertModelError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        return sys.exit(e.exit_code)
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        click.echo(f"error: {where}{e.strerror or e}", err=True)
        return sys.exit(errors.EXIT_IO)
    except Exception as e:
        if debug:
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)", err=True)
        return sys.exit(errors.EXIT_INTERNAL)
    return sys.exit(0)
