"""Tasks: where a task's problems come from, how they are prompted, post-processed and scored.

Registry: name -> :class:`Task` subclass. Add a task by writing one module and one entry in :data:`TASKS`.
"""

from __future__ import annotations

from peftlab.errors import UserError
from peftlab.tasks.base import Task
from peftlab.tasks.codegen import CodeGeneration
from peftlab.tasks.humaneval import HumanEval

TASKS: dict[str, type[Task]] = {
    CodeGeneration.name: CodeGeneration,
    HumanEval.name: HumanEval,
}


def get_task(name: str, config) -> Task:
    """Raises: UserError for an unknown task name."""
    if name not in TASKS:
        raise UserError(f"unknown task '{name}'; known: {', '.join(sorted(TASKS))}")
    return TASKS[name](config)
