"""Tasks: where a task's problems come from, how they are prompted, post-processed and scored.

Registry: name -> :class:`Task` subclass. A built-in task is one folder ``tasks/<name>/`` plus one entry
in :data:`TASKS`. A task defined outside peftlab needs no entry: name its module in the config
(``task: mypackage.mytask``, or ``mypackage.mytask:MyTask`` when it holds several) and it is imported
when a run names it (docs/design.md, "Adding a task").

A task declares what is its own, and generic code asks it: its ``data.*`` options (``Task.Options``, checked
and filled in by :func:`resolve_task_options`), the named datasets it reads (``Task.loaders``, found by
:func:`get_loader`), the options that choose only its test set (``Task.test_set_options``) and its metric
families (``Task.metric_families``).
"""

from __future__ import annotations

import importlib
import inspect

from peftlab.config import Config, DataConfig, check_owned_options, refuse_unowned
from peftlab.data.hub import NamedLoader
from peftlab.errors import UserError
from peftlab.tasks.apps import Apps
from peftlab.tasks.base import Task
from peftlab.tasks.codegen import CodeGeneration
from peftlab.tasks.humaneval import HumanEval
from peftlab.tasks.humaneval_x_java import HumanEvalXJava
from peftlab.tasks.java_repair import JavaProgramRepair
from peftlab.tasks.java_testgen import JavaTestGeneration
from peftlab.tasks.mbpp import MBPP
from peftlab.tasks.project_codegen import ProjectCodeGeneration
from peftlab.tasks.repair import ProgramRepair
from peftlab.tasks.testgen import TestGeneration

TASKS: dict[str, type[Task]] = {task.name: task for task in (
    CodeGeneration, HumanEval, MBPP, ProjectCodeGeneration, TestGeneration, ProgramRepair, JavaTestGeneration, Apps,
    JavaProgramRepair, HumanEvalXJava)}


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
    """Raises: UserError for an unknown task name (see :func:`task_class`) or an unknown ``data.loader``."""
    task = task_class(name)
    if config.data.loader is not None:
        get_loader(config.data.loader, config)
    return task(config)


def get_training_task(config) -> Task:
    """The task whose training split trains the adapter and supplies demonstrations: ``data.train_task``,
    else ``task``. Raises: UserError for an unknown name."""
    return get_task(config.data.train_task or config.task, config)


def run_tasks(config: Config) -> list[type[Task]]:
    """The tasks whose data a run uses: ``task``, then ``data.train_task`` when it is another one.

    Raises:
        UserError: an unknown task name.
    """
    classes = [task_class(config.task)]
    if config.data.train_task and (other := task_class(config.data.train_task)) is not classes[0]:
        classes.append(other)
    return classes


def option_owners(option: str) -> list[str]:
    """The registered tasks that declare the ``data.*`` option ``option``."""
    return [name for name, task in TASKS.items() if option in task.Options.model_fields]


def resolve_task_options(config: Config) -> None:
    """Check the ``data.*`` options besides ``DataConfig``'s own fields against the run's tasks
    (:func:`run_tasks`; an option both declare goes to both) and write back all of their options, defaults
    filled in, so that the resolved config (``config.yaml``, a study cell's hash) says exactly what the tasks
    ran with, whether a default was given or not. An option no run task declares is dropped when it holds its
    pre-issue-26 default (``LEGACY_DEFAULTS``: old resolved configs carried every task's options).

    Raises:
        UserError: one line: an unknown task, an option the run's tasks do not take (naming the tasks that
            do), an unknown key, or a bad value.
    """
    owners = run_tasks(config)
    declared = {key for owner in owners for key in owner.Options.model_fields}
    names = " or ".join(owner.name for owner in owners)
    given = refuse_unowned("data", dict(config.data.__pydantic_extra__ or {}), declared, f"task {names}", option_owners)
    resolved = {}
    for owner in owners:
        share = {key: value for key, value in given.items() if key in owner.Options.model_fields}
        options = check_owned_options("data", share, owner.Options, f"task {owner.name}", option_owners)
        resolved.update(options.model_dump(mode="json"))
    fields = {name: getattr(config.data, name) for name in DataConfig.model_fields}
    config.data = DataConfig(**fields, **resolved)


def _loaders(config: Config | None = None) -> dict[str, tuple[NamedLoader, str]]:
    """Every named loader (the registered tasks', and the tasks ``config`` names), with the task it feeds."""
    tasks = [*TASKS.values(), *(run_tasks(config) if config is not None else ())]
    found: dict[str, tuple[NamedLoader, str]] = {}
    for task in tasks:
        for loader in task.loaders:
            found.setdefault(loader.name, (loader, task.name))
    return found


def get_loader(name: str, config: Config | None = None) -> NamedLoader:
    """The named loader ``name`` (``data.loader``), declared by a registered task or one ``config`` names.

    Raises:
        UserError: no task declares it.
    """
    found = _loaders(config)
    if name not in found:
        raise UserError(f"unknown data.loader '{name}'; known: {', '.join(sorted(found))}")
    return found[name][0]


def check_loader(config: Config) -> None:
    """``data.loader``, when set, is known and makes the records of the run's task or its ``data.train_task``.

    Raises:
        UserError: an unknown loader, or one that feeds another task (naming it).
    """
    name = config.data.loader
    if name is None or any(loader.name == name for task in run_tasks(config) for loader in task.loaders):
        return
    get_loader(name, config)
    feeds = _loaders(config)[name][1]
    raise UserError(f"data.loader {name} makes {feeds} records; use it with task={feeds} "
                    f"(or data.train_task={feeds}), not task={config.task}")
