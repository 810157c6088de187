"""Progress of `streamspace backup` and `restore` on stderr: one bar per step (a table, a home
volume, the compression), rows or bytes as the step counts them."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text


class _Amount(ProgressColumn):
    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        done, total = task.completed, task.total
        if unit == "bytes":
            shown = decimal(int(done)) + ("" if total is None else f" / {decimal(int(total))}")
        else:
            shown = f"{int(done)}" + ("" if total is None else f" / {int(total)}") + f" {unit}"
        return Text(shown, style="progress.download")


class BarProgress:
    """A rich progress display; use it as a context manager around the work."""

    def __init__(self, console: Console | None = None) -> None:
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            _Amount(),
            console=console or Console(stderr=True),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> BarProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if _error is None:
            self._finish()
        self._bars.stop()

    def step(self, description: str, *, total: int | None, unit: str) -> None:
        self._finish()
        self._task = self._bars.add_task(description, total=total, unit=unit)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._bars.advance(self._task, amount)

    def _finish(self) -> None:
        """A step of unknown size is complete at whatever it reached."""
        if self._task is not None:
            task = self._bars.tasks[-1]
            if task.total is None:
                self._bars.update(self._task, total=task.completed)
        self._task = None
