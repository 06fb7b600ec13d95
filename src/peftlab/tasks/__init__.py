"""Tasks: where a task's problems come from, how they are prompted, post-processed and scored.

Registry: name -> :class:`Task` subclass. A built-in task is one folder ``tasks/<name>/`` plus one entry
in :data:`TASKS`. A task defined outside peftlab needs no entry: name its module in the config
(``task: mypackage.mytask``, or ``mypackage.mytask:MyTask`` when it holds several) and it is imported
when a run names it (docs/design.md, "Adding a task").
"""

from __future__ import annotations

import importlib
import inspect

from peftlab.errors import UserError
from peftlab.tasks.apps import Apps
from peftlab.tasks.base import Task
from peftlab.tasks.codegen import CodeGeneration
from peftlab.tasks.humaneval import HumanEval
from peftlab.tasks.java_testgen import JavaTestGeneration
from peftlab.tasks.mbpp import MBPP
from peftlab.tasks.project_codegen import ProjectCodeGeneration
from peftlab.tasks.repair import ProgramRepair
from peftlab.tasks.testgen import TestGeneration

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    CodeGeneration, HumanEval, MBPP, ProjectCodeGeneration, TestGeneration, ProgramRepair, JavaTestGeneration, Apps)}


def _import_task(spec: str) -> type[Task]:
    module_name, _, class_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise UserError(f"unknown task '{spec}'; known: {', '.join(sorted(TASKS))} "
                        "(or an importable module that defines a Task)") from None
    found = [obj for name, obj in vars(module).items()
             if inspect.isclass(obj) and issubclass(obj, Task) and not inspect.isabstract(obj)
             and obj.__module__ == module.__name__ and (not class_name or name == class_name)]
    if len(found) != 1:
        raise UserError(f"task module '{module_name}' must define exactly one Task subclass"
                        f"{f' named {class_name}' if class_name else ''} (found {len(found)})")
    return found[0]


def task_class(name: str) -> type[Task]:
    """The Task class for a registered name or an importable ``module[:Class]``.

    Raises:
        UserError: neither a registered name nor an importable module with one Task subclass.
    """
    if name in TASKS:
        return TASKS[name]
    return _import_task(name)


def get_task(name: str, config) -> Task:
    """Raises: UserError for an unknown task name (see :func:`task_class`)."""
    return task_class(name)(config)


def get_training_task(config) -> Task:
    """The task whose training split trains the adapter and supplies demonstrations: ``data.train_task``,
    else ``task``. Raises: UserError for an unknown name."""
    return get_task(config.data.train_task or config.task, config)
