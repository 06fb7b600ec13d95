"""Options live with their owner (issue 26): each task declares its ``data.*`` options (``Task.Options``),
they are checked and filled in against the run's tasks, and no generic module names one."""

import ast
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from peftlab import api
from peftlab.config import LEGACY_DEFAULTS, Config, DataConfig, dump_config, load_config
from peftlab.errors import UserError
from peftlab.study.spec import training_key
from peftlab.tasks import TASKS, get_task, resolve_task_options

SOURCE = Path(__file__).parents[1] / "src" / "peftlab"
TASK_OPTIONS = {option for task in TASKS.values() for option in task.Options.model_fields}
REPAIR_DEFAULTS = {"project": None, "project_seed": 0, "context_chars": 1024, "bugs": None,
                   "show_failing_test": False, "bugsinpy": False}


def _without_legacy_table(path: Path, text: str) -> str:
    """config.py's LEGACY_DEFAULTS names every old option on purpose (old config files keep loading): blank it."""
    if path != SOURCE / "config.py":
        return text
    lines = text.splitlines()
    for node in ast.parse(text).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(getattr(target, "id", None) == "LEGACY_DEFAULTS" for target in targets):
            lines[node.lineno - 1:node.end_lineno] = [""] * (node.end_lineno - node.lineno + 1)
    return "\n".join(lines)


def _option_uses(text: str, options: set[str]) -> list[str]:
    """Where ``text`` names one of ``options`` as a config option: ``data.<option>`` anywhere (code, strings,
    comments), or the bare name as a string used as a key (a subscript, a call argument, a comparison)."""
    found = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
             for m in re.finditer(rf"\bdata\.({'|'.join(map(re.escape, sorted(options)))})\b", text)]
    tree = ast.parse(text)
    used_as_key = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            used_as_key.add(id(node.slice))
        elif isinstance(node, ast.Call):
            used_as_key |= {id(arg) for arg in node.args}
        elif isinstance(node, ast.Compare):
            used_as_key |= {id(operand) for operand in (node.left, *node.comparators)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in options and id(node) in used_as_key:
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


def _generic_modules():
    for path in sorted(SOURCE.rglob("*.py")):
        if path.relative_to(SOURCE).parts[0] != "tasks":
            yield path


def test_the_scan_finds_what_the_old_code_did():
    """The old generic code named repair's option twice; the scan sees both forms."""
    old = textwrap.dedent('''\
        def training_key(resolved):
            resolved["data"].pop("bugs")  # which bugs are scored does not change training
        dataset = str(flat.get("data.bugs") or flat.get("data.dir", ""))
        card = {"project": spec}  # a card's key, not the option
        PROJECT_DIR = "project"
    ''')
    assert [use.split(": ", 1)[1] for use in _option_uses(old, TASK_OPTIONS)] == ["data.bugs", "'bugs'"]


def test_no_generic_module_names_a_task_option():
    assert {"project", "project_seed", "context_chars", "bugs", "show_failing_test", "bugsinpy"} <= TASK_OPTIONS
    uses = {}
    for path in _generic_modules():
        text = _without_legacy_table(path, path.read_text(encoding="utf-8"))
        if found := _option_uses(text, TASK_OPTIONS):
            uses[str(path.relative_to(SOURCE))] = found
    assert not uses, f"generic code names a task's option (ask the task instead): {uses}"


def test_task_options_do_not_shadow_data_fields_and_are_documented():
    docs = (SOURCE.parents[1] / "docs" / "config.md").read_text(encoding="utf-8")
    for name, task in TASKS.items():
        assert not set(task.Options.model_fields) & set(DataConfig.model_fields), name
        assert set(task.test_set_options) <= set(task.Options.model_fields), name
        for option in task.Options.model_fields:
            assert f"`data.{option}`" in docs, f"docs/config.md does not list data.{option} ({name})"


def test_the_resolved_config_of_repair_shows_all_its_options():
    config = api.check(load_config(None, ["task=repair", "method.name=zero-shot"]))
    assert {key: value for key, value in yaml.safe_load(dump_config(config))["data"].items()
            if key in REPAIR_DEFAULTS} == REPAIR_DEFAULTS
    explicit = api.check(load_config(None, ["task=repair", "method.name=zero-shot", "data.project_seed=0",
                                            "data.bugs=null"]))
    assert dump_config(explicit) == dump_config(config)  # a default given or not: the same resolved config


def test_a_task_without_options_resolves_to_none():
    config = api.check(load_config(None, ["task=humaneval", "data.train_task=codegen"]))
    assert not (config.data.__pydantic_extra__ or {})
    assert set(yaml.safe_load(dump_config(config))["data"]) == set(DataConfig.model_fields)


@pytest.mark.parametrize("task", ["humaneval", "repair", "codegen"])
def test_an_old_resolved_config_yaml_loads_and_resolves(task, tmp_path):
    """Before issue 26 every resolved config.yaml carried all six task options (and every method option) at
    their defaults, whatever the task."""
    tree = Config(task=task).model_dump(mode="json")
    tree["data"].update(LEGACY_DEFAULTS["data"])
    tree["method"].update(LEGACY_DEFAULTS["method"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    config = api.check(load_config(path))
    extras = config.data.__pydantic_extra__ or {}
    assert extras == (REPAIR_DEFAULTS if task == "repair" else {})


def test_an_option_of_another_task_is_one_line_naming_its_owner():
    with pytest.raises(UserError) as error:
        api.config(overrides=["task=humaneval", "data.bugs=quixbugs"])
    assert str(error.value) == "data.bugs='quixbugs' does not apply to task humaneval; it applies to repair, java-repair"
    with pytest.raises(UserError, match="^data.project='p' does not apply to task humaneval or codegen; it applies "
                                        "to project-codegen, testgen, repair$"):
        api.config(overrides=["task=humaneval", "data.train_task=codegen", "data.project=p"])
    with pytest.raises(UserError, match=r"^unknown config key 'data.nosuch'$"):
        api.config(overrides=["data.nosuch=1"])
    with pytest.raises(UserError, match=r"^bad value for 'data.context_chars'"):
        api.config(overrides=["task=project-codegen", "data.context_chars=-1"])
    # an old default of another task's option is what every old config.yaml carries: dropped, not an error
    assert api.config(overrides=["task=humaneval", "data.bugs=null"]).data.__pydantic_extra__ == {}


def test_options_go_to_the_scored_task_and_the_training_task():
    config = api.config(overrides=["task=humaneval", "data.train_task=repair", "data.project=p", "data.bugsinpy=true"])
    assert {k: v for k, v in config.data.__pydantic_extra__.items()} == {**REPAIR_DEFAULTS, "project": "p", "bugsinpy": True}
    assert get_task("repair", config).options.bugsinpy is True
    # a key both declare goes to both
    both = api.config(overrides=["task=repair", "data.train_task=testgen", "data.project=p", "data.bugs=quixbugs"])
    assert get_task("repair", both).options.project == get_task("testgen", both).options.project == "p"
    assert get_task("repair", both).options.bugs == "quixbugs"


def test_a_task_reads_its_options_from_a_config_built_without_resolution():
    config = load_config(None, ["task=repair", "data.show_failing_test=true"])
    options = get_task("repair", config).options
    assert options.show_failing_test is True and options.bugs is None and options.context_chars == 1024
    with pytest.raises(UserError, match="bad value for 'data.project_seed'"):
        get_task("testgen", load_config(None, ["data.project_seed=many"]))


def test_the_training_key_ignores_options_that_choose_only_the_test_set():
    def key(*overrides):
        return training_key(api.config(overrides=["task=repair", "data.project=p", "method.name=lora", *overrides]))

    assert key("data.bugs=humaneval") == key("data.bugs=quixbugs") == key()
    assert key("data.show_failing_test=true") != key()  # it changes the training prompts
    assert key("data.project_seed=1") != key()
    # the scored task's options do not change what the training task trains on
    scored = training_key(api.config(overrides=["task=repair", "data.train_task=codegen", "data.bugs=quixbugs",
                                                "data.show_failing_test=true", "method.name=lora"]))
    assert scored == training_key(api.config(overrides=["task=humaneval", "data.train_task=codegen",
                                                        "method.name=lora"]))


def test_the_report_names_the_dataset_by_the_task_s_test_set_option():
    from peftlab.report.collect import _dataset

    assert _dataset({"task": "repair", "data.bugs": "quixbugs", "data.dir": "d"}) == "quixbugs"
    assert _dataset({"task": "repair", "data.bugs": None, "data.dir": "d"}) == "d"
    assert _dataset({"task": "codegen", "data.dir": "d"}) == "d"
    assert _dataset({"task": "not.a.module", "data.dir": "d"}) == "d"


def test_a_task_outside_peftlab_declares_its_own_options(tmp_path, monkeypatch):
    (tmp_path / "optioned_task.py").write_text(textwrap.dedent('''\
        from pydantic import Field
        from peftlab.config import OwnedOptions
        from peftlab.tasks.codegen import CodeGeneration

        class LevelOptions(OwnedOptions):
            level: int = Field(1, ge=1)
            """How hard."""

        class Levelled(CodeGeneration):
            name = "levelled"
            Options = LevelOptions
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    config = api.config(overrides=["task=optioned_task", "data.level=3"])
    assert config.data.__pydantic_extra__ == {"level": 3}
    assert get_task("optioned_task", config).options.level == 3
    assert api.config(overrides=["task=optioned_task"]).data.__pydantic_extra__ == {"level": 1}
    with pytest.raises(UserError, match="unknown config key 'data.level'"):
        api.config(overrides=["task=codegen", "data.level=3"])
    with pytest.raises(UserError, match="bad value for 'data.level'"):
        api.config(overrides=["task=optioned_task", "data.level=0"])


def test_resolving_twice_changes_nothing():
    config = api.config(overrides=["task=repair", "data.bugs=quixbugs"])
    before = dump_config(config)
    resolve_task_options(config)
    assert dump_config(config) == before
