"""Progress on stderr for the CLI commands: a rich bar on a terminal, a few plain lines in a log or a pipe."""

from __future__ import annotations

from typing import Any

import click


def progress(enabled: bool) -> Any:
    """Progress on stderr (off with --quiet/--json): a rich bar with rate and ETA on a terminal; otherwise
    (a CI log, a pipe) a few summary lines (each quarter and the end) instead of one per iteration."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from convertmodel.cli.common import console

    err = console(stderr=True)
    if enabled and not err.is_terminal:
        return LogProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _rate_column(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled,
        transient=True,
    )


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(f"{task.speed:.1f}/s" if task.speed else "")

    return Rate()


class LogProgress:
    """The non-terminal progress: the rich Progress calls the commands use, printed as a few plain lines."""

    def __init__(self) -> None:
        import time

        self._clock = time.perf_counter
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            for t in self.tasks.values():
                if t["done"] and t["printed"] != t["done"]:
                    self._line(t, final=True)

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        tid = len(self.tasks)
        self.tasks[tid] = {"desc": description, "total": total, "done": 0, "start": self._clock(), "next": 0.25}
        self.tasks[tid]["printed"] = None
        return tid

    def update(self, task: int, *, completed: float | None = None, advance: float | None = None, **kw: Any) -> None:
        t = self.tasks[task]
        if kw.get("total") is not None:
            t["total"] = kw["total"]
        if kw.get("description"):
            t["desc"] = kw["description"]
        t["done"] = completed if completed is not None else t["done"] + (advance or 0)
        if "first" not in t:  # rate and ETA count from the first update (not from a Spark session's start-up)
            t["first"] = (self._clock(), t["done"])
        total = t["total"]
        if total and t["done"] >= t["next"] * total:
            while t["next"] <= 1.0 and t["done"] >= t["next"] * total:
                t["next"] += 0.25
            self._line(t, final=t["done"] >= total)

    def _line(self, t: dict[str, Any], final: bool) -> None:
        now = self._clock()
        dt = max(now - t["start"], 1e-9)
        t1, d1 = t.get("first", (t["start"], 0))
        rate = (t["done"] - d1) / (now - t1) if t["done"] > d1 and now > t1 else t["done"] / dt
        total = t["total"]
        of = f"/{total:g}" if total else ""
        eta = f", ETA {(total - t['done']) / rate:.0f} s" if total and rate > 0 and not final else ""
        click.echo(f"{t['desc']}: {t['done']:g}{of} in {dt:.1f} s ({rate:.1f}/s{eta})", err=True)
        t["printed"] = t["done"]
