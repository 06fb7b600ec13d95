"""HumanEval-X Java's ``Main`` test as a JUnit 4 class (``junit_from_main``): the reference test of
``java-testgen``'s HumanEval-X focal classes and the target of its built-in training data
(:mod:`peftlab.tasks.java_testgen.training` says how and why); and how every such test class starts
(``test_class_head``), which the task's prompt ends with.

HumanEval-X's test is a ``Main`` whose ``main`` builds ``List<Boolean> correct = Arrays.asList(c1, ..., cn)``
and throws ``AssertionError`` when one is false (161 of 164 problems). Here each check becomes its own
``@Test`` method holding ``assertTrue(c)`` (``assertFalse(c')`` for ``!c'``); the statements before the list
(``Solution s = new Solution();``) become a field when that is all they are, else they open every method;
statements after the check (loops that throw) become one last method. One method per check is what a
developer's JUnit test of the method looks like, and it is what the model learns to write: a generation that
``generation.max_new_tokens`` cuts keeps its complete methods (``extract_test`` cuts back to them), where a
single long method would be cut to nothing. The three other problems (random round trips) keep their
``main`` body as one test method: it throws ``AssertionError``, which JUnit counts as a failure too.
"""

from __future__ import annotations

from peftlab.data.java_mutants import code_tokens, matching

HEADER = "import org.junit.Test;\nimport static org.junit.Assert.*;\n"
_LIST = ("List", "<", "Boolean", ">", "correct", "=", "Arrays", ".", "asList", "(")
_DEPTH = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}  # how a bracket token changes the nesting
_CHECK = ("if", "(", "correct", ".", "contains", "(", "false", ")", ")", "{", "throw", "new", "AssertionError",
          "(", ")", ";", "}")


def _find(code: list, texts: tuple[str, ...]) -> int | None:
    """The index in ``code`` where the token texts ``texts`` start, or None."""
    for index in range(len(code) - len(texts) + 1):
        if all(code[index + k].text == text for k, text in enumerate(texts)):
            return index
    return None


def _arguments(code: list, open_index: int) -> list[tuple[int, int]]:
    """The token ranges ``[first, last]`` of the arguments of the call whose ``(`` is ``code[open_index]``."""
    close, ranges, first, depth = matching(code, open_index), [], open_index + 1, 0
    for index in range(open_index + 1, close):
        depth += _DEPTH.get(code[index].text, 0)
        if depth == 0 and code[index].text == ",":
            ranges.append((first, index - 1))
            first = index + 1
    if first < close:
        ranges.append((first, close - 1))
    return ranges


def _assertion(source: str, code: list, first: int, last: int) -> str:
    """``assertTrue(check)``, or ``assertFalse(rest)`` for ``!rest`` where ``rest`` is one operand (a call
    chain, no operator outside brackets: ``!a == b`` is ``(!a) == b``, which stays an assertTrue)."""
    text = source[code[first].start:code[last].end]
    if code[first].text == "!" and first < last:
        depth = 0
        for token in code[first + 1:last + 1]:
            depth += _DEPTH.get(token.text, 0)
            if depth == 0 and token.kind == "op" and token.text not in ".()[]{}":
                break
        else:
            return f"assertFalse({source[code[first + 1].start:code[last].end]});"
    return f"assertTrue({text});"


def test_class_head(imports: str, focal_name: str) -> str:
    """How a test class for the focal class ``focal_name`` starts: the focal class's ``imports``, JUnit's,
    then ``public class <focal_name>Test {`` and its newline. Each rewritten test starts so, and a generated
    test continues it (the task's prompt ends with it)."""
    return f"{imports}\n{HEADER}\npublic class {focal_name}Test {{\n"


def _method(name: str, throws: str, body: str) -> str:
    return f"    @Test\n    public void {name}(){throws}{{\n{body}\n    }}\n"


def junit_from_main(problem: dict) -> str:
    """The problem's ``Main`` test as a JUnit 4 class (see the module docstring); its imports are the
    prompt's, then JUnit's."""
    source = problem["test"]
    code = code_tokens(source)
    head = _find(code, ("public", "class", "Main", "{"))
    main = _find(code, ("public", "static", "void", "main", "("))
    if head is None or main is None:
        raise ValueError(f"{problem['id']}: its test is not a `public class Main` with a `main`")
    body_open = next(i for i in range(matching(code, main + 4), len(code)) if code[i].text == "{")
    throws = source[code[matching(code, main + 4)].end:code[body_open].start].rstrip() + " "  # `throws X` kept
    body_close = matching(code, body_open)
    method = problem["entry_point"]
    name = "test" + method[:1].upper() + method[1:]
    fields = source[code[head + 3].end:code[main].start].strip()
    fields = f"    {fields}\n\n" if fields else ""
    listed, check = _find(code, _LIST), _find(code, _CHECK)
    if listed is None or check is None or not body_open < listed < check < body_close:
        methods = _method(name, throws, source[code[body_open].end:code[body_close].start].strip("\n").rstrip())
        return test_class_head(problem["imports"], "Solution") + fields + methods + "}\n"
    open_index = listed + len(_LIST) - 1
    close = matching(code, open_index)
    setup = source[code[body_open].end:code[listed].start].strip()
    if setup == "Solution s = new Solution();":
        fields, setup = f"    private final {setup}\n\n" + fields, ""
    opening = f"        {setup}\n" if setup else ""
    checks = [opening + "        " + _assertion(source, code, first, last)
              for first, last in _arguments(code, open_index)]
    rest = (source[code[close + 1].end:code[check].start]  # after `);`, before the `if`
            + source[code[check + len(_CHECK) - 1].end:code[body_close].start]).strip()
    if rest:
        checks.append(opening + "        " + rest)
    methods = "\n".join(_method(f"{name}{number}", throws, body) for number, body in enumerate(checks, 1))
    return test_class_head(problem["imports"], "Solution") + fields + methods + "}\n"
