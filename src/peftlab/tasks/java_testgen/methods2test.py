"""Methods2Test (``data.loader=methods2test``, ``andstor/methods2test_small``) as the task's records."""

from __future__ import annotations

from peftlab.data.hub import NamedLoader


def _methods2test(row: dict, index: int) -> dict:
    # "source": the focal method with the context of the chosen configuration (focal class, constructors,
    # other method signatures, fields, test class); "target": the JUnit test case written for it
    return {"id": str(row["id"]), "instruction": row["source"], "reference": row["target"]}


LOADER = NamedLoader("methods2test", "andstor/methods2test_small", "MIT (the dataset card)",
                     ("id", "source", "target"), _methods2test, subset="fm+fc+c+m+f+t+tc")
