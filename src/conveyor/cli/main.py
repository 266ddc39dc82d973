"""Entry point of the ``conveyor`` command. Subcommands load lazily to keep start-up fast."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from conveyor.errors import EXIT_INTERNAL, EXIT_USAGE, ConveyorError

COMMANDS = {
    "init": ("conveyor.cli.init_cmd:init", "Create a new project from a working template."),
    "run": ("conveyor.cli.run_cmd:run", "Run a pipeline, reusing verified cached steps."),
    "runs": ("conveyor.cli.runs_cmd:runs", "List, show, compare and report runs."),
    "artifacts": ("conveyor.cli.artifacts_cmd:artifacts", "Inspect stored artifacts."),
    "lineage": (
        "conveyor.cli.lineage_cmd:lineage",
        "Show what produced an artifact or run, and what used it.",
    ),
    "reproduce": (
        "conveyor.cli.reproduce_cmd:reproduce",
        "Re-execute a run from its recorded commit and compare every artifact.",
    ),
    "db": ("conveyor.cli.db_cmd:db", "Manage the metadata database schema."),
    "model": ("conveyor.cli.model_cmd:model", "Register, package, validate and export models."),
    "predict": ("conveyor.cli.predict_cmd:predict", "Batch predictions with a model version."),
    "serve": ("conveyor.cli.serve_cmd:serve", "Serve a packaged model version over HTTP."),
    "loadtest": (
        "conveyor.cli.loadtest_cmd:loadtest",
        "Load-test a prediction service; gate on an SLO.",
    ),
    "data": ("conveyor.cli.data_cmd:data", "Infer schemas, validate data, measure drift."),
    "promote": (
        "conveyor.cli.promote_cmd:promote",
        "Promote a model version to an environment through its gates.",
    ),
    "approve": ("conveyor.cli.promote_cmd:approve", "Approve a promotion, then deploy it."),
    "reject": ("conveyor.cli.promote_cmd:reject", "Reject a promotion awaiting approval."),
    "rollback": (
        "conveyor.cli.promote_cmd:rollback",
        "Return an environment to its previous live version.",
    ),
    "history": ("conveyor.cli.promote_cmd:history", "The promotions of an environment."),
    "status": (
        "conveyor.cli.environment_cmd:status_cmd",
        "Each environment's live version, health, URL and traffic split.",
    ),
    "deploy": (
        "conveyor.cli.environment_cmd:deploy",
        "Start an environment's serving process, or render Kubernetes manifests.",
    ),
    "stop": ("conveyor.cli.environment_cmd:stop", "Stop an environment's serving process."),
    "replay": (
        "conveyor.cli.promote_cmd:replay",
        "Offline shadow: replay an environment's logged requests against a version.",
    ),
    "token": ("conveyor.cli.access_cmd:token", "Create and revoke API tokens."),
    "whoami": ("conveyor.cli.access_cmd:whoami", "Show the current actor and its roles."),
    "audit": ("conveyor.cli.access_cmd:audit", "Show the audit log."),
    "ci": (
        "conveyor.cli.ci_cmd:ci",
        "Test a change: pytest, pipeline on a sample, data, model and serving checks "
        "against the base branch.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target[0].partition(":")
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above, so `conveyor --help` imports no subcommand.
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "--project",
    "project",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CONVEYOR_PROJECT",
    help="Project directory (default: the nearest parent directory holding conveyor.yaml).",
)
@click.version_option(package_name="conveyor-ml", prog_name="conveyor")
@click.pass_context
def cli(ctx: click.Context, project: Path | None) -> None:
    """Conveyor: CI/CD for machine learning.

    Typed, cached pipelines; content-addressed artifacts; lineage; reproducible runs.
    Status goes to stderr, results to stdout; --json gives machine-readable results.
    Exit codes: 0 success, 1 a run or gate failed, 2 usage or configuration error,
    3 internal error.
    """
    ctx.obj = {"project": project}


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="conveyor", standalone_mode=False)
    except ConveyorError as exc:
        _print_error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if exc.exit_code == 2 else exc.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except Exception:  # noqa: BLE001 - the last resort: report, never hide
        import traceback

        traceback.print_exc()
        _print_error(
            "internal error in Conveyor (the traceback is above)",
            "please report it with the command you ran",
        )
        sys.exit(EXIT_INTERNAL)
    # Without standalone mode, click returns the code given to ctx.exit() instead of exiting.
    sys.exit(code if isinstance(code, int) else 0)


def _print_error(message: str, hint: str | None) -> None:
    color = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    head = click.style("error:", fg="red", bold=True) if color else "error:"
    click.echo(f"{head} {message}", err=True)
    if hint:
        click.echo(f"  hint: {hint}", err=True)
