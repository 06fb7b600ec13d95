"""Unit-test generation for Java (Methods2Test, Tufano et al., 2022): a focal method in its class context
-> the JUnit test case its developers wrote, scored by exact match and CodeBLEU parsed as Java.

The records come from ``data.loader=methods2test`` (``andstor/methods2test_small``, or a local copy in its
schema; ``data.subset`` picks the context level, default ``fm+fc+c+m+f+t+tc``) or any ``data.source`` with
``instruction``/``reference`` columns. The tests are not run: the dataset ships methods, not buildable
projects (their classpaths and dependencies), so match scores are what it supports; docs/testgen.md says
where execution-scored test generation lives (``task=testgen``, Python).
"""

from __future__ import annotations

from pathlib import Path

from peftlab.errors import UserError
from peftlab.tasks.codegen import CodeGeneration
from peftlab.tasks.java_testgen import methods2test

# The chat turn: the source holds the focal method and its context, and the reference is one test method.
CHAT_REQUEST = (
    "Write one JUnit test method for the focal method below (its class context is included). "
    "Reply with the test method's Java code only.\n\n{instruction}"
)


class JavaTestGeneration(CodeGeneration):
    name = "java-testgen"
    loaders = (methods2test.LOADER,)
    language = "java"
    chat_request = CHAT_REQUEST

    def load(self, split: str) -> list[dict]:
        if not self._from_source():
            raise UserError("the java-testgen task reads data.loader=methods2test (or a data.source with "
                            "instruction/reference columns)")
        return super().load(split)

    def prepare_data(self, directory: Path) -> dict | None:
        return None  # no default dataset to build: it comes from the loader or the source
