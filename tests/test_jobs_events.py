"""Consumers read only fields their event carries (static check over the whole tree).

Why: the acquisition panel read ``focus_score`` from ``pair_stored`` events that did not
carry it, and nothing noticed. Events are typed dataclasses now; this walks every module
and test, finds the branches that narrow an event (``isinstance(ev, PairStored)``,
``ev.kind == "pair_stored"``, ``ev.kind in (...)``) and checks each ``ev.x`` (and each
key read from ``ev.data``) against the fields of the event classes of that branch.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from thinkscope_gui.pairs import engine as eng

ROOT = Path(__file__).resolve().parent.parent
EVENTS = [eng.Started, eng.TileDone, eng.PairStored, eng.PairRejected, eng.Finished,
          eng.Failed]
FIELDS = {c.kind: {f.name for f in dataclasses.fields(c)} | {"kind"} for c in EVENTS}
BY_CLASS = {c.__name__: c.kind for c in EVENTS}


def _narrowing(test: ast.expr) -> tuple[str, set[str]] | None:
    """(variable, event kinds) when ``test`` narrows a variable to some event kinds."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        for v in test.values:
            if (hit := _narrowing(v)) is not None:
                return hit
        return None
    if (isinstance(test, ast.Call) and getattr(test.func, "id", "") == "isinstance"
            and isinstance(test.args[0], ast.Name)):
        t = test.args[1]
        names = ([e for e in t.elts] if isinstance(t, ast.Tuple)
                 else [t.left, t.right] if isinstance(t, ast.BinOp) else [t])
        kinds = {BY_CLASS[n.id if isinstance(n, ast.Name) else getattr(n, "attr", "")]
                 for n in names
                 if (n.id if isinstance(n, ast.Name) else getattr(n, "attr", "")) in BY_CLASS}
        return (test.args[0].id, kinds) if kinds else None
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Attribute)
            and test.left.attr == "kind" and isinstance(test.left.value, ast.Name)):
        right = test.comparators[0]
        if isinstance(test.ops[0], ast.Eq) and isinstance(right, ast.Constant):
            kinds = {right.value}
        elif isinstance(test.ops[0], ast.In) and isinstance(right, ast.Tuple | ast.List):
            kinds = {e.value for e in right.elts if isinstance(e, ast.Constant)}
        else:
            return None
        kinds &= set(FIELDS)
        return (test.left.value.id, kinds) if kinds else None
    return None


def _key(node: ast.AST) -> str | None:
    """The constant key of ``x["k"]`` or ``x.get("k")``."""
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return node.slice.value
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get" and node.args and isinstance(node.args[0], ast.Constant)):
        return node.args[0].value
    return None


def _base(node: ast.AST) -> ast.AST | None:
    if isinstance(node, ast.Subscript):
        return node.value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.value
    return None


def check_source(src: str, name: str = "<src>") -> list[str]:
    """Every read of a field the narrowed event does not carry, as 'file:line: ...'."""
    tree = ast.parse(src)
    problems: list[str] = []
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for fn in funcs or [tree]:
        aliases: dict[str, str] = {}  # d = ev.data
        for n in ast.walk(fn):
            if (isinstance(n, ast.Assign) and len(n.targets) == 1
                    and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Attribute)
                    and n.value.attr == "data" and isinstance(n.value.value, ast.Name)):
                aliases[n.targets[0].id] = n.value.value.id
        for node in ast.walk(fn):
            if not isinstance(node, ast.If | ast.IfExp) or (hit := _narrowing(node.test)) is None:
                continue
            var, kinds = hit
            allowed = set.intersection(*(FIELDS[k] for k in kinds))
            body = node.body if isinstance(node, ast.If) else [node.body]
            for stmt in body:
                for n in ast.walk(stmt):
                    if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                            and n.value.id == var and n.attr not in allowed):
                        problems.append(f"{name}:{n.lineno}: {var}.{n.attr} is not a field "
                                        f"of {sorted(kinds)}")
                    key, base = _key(n), _base(n)
                    if key is None or base is None:
                        continue
                    src_var = (aliases.get(base.id) if isinstance(base, ast.Name)
                               else base.value.id if isinstance(base, ast.Attribute)
                               and base.attr == "data" and isinstance(base.value, ast.Name)
                               else None)
                    if src_var == var and key not in allowed:
                        problems.append(f"{name}:{n.lineno}: {var}.data[{key!r}] is not a "
                                        f"field of {sorted(kinds)}")
    return problems


def test_every_consumer_reads_only_fields_its_event_carries() -> None:
    problems: list[str] = []
    for path in sorted([*ROOT.glob("thinkscope_gui/**/*.py"), *ROOT.glob("tests/*.py")]):
        rel = str(path.relative_to(ROOT))
        problems += check_source(path.read_text(encoding="utf-8"), rel)
    assert not problems, "\n".join(problems)


def test_checker_catches_a_missing_field() -> None:
    """The check must be able to fail: the old panel code read a key no event carried."""
    bad = (
        "def on(ev):\n"
        "    d = ev.data\n"
        "    if ev.kind in ('pair_stored', 'pair_rejected'):\n"
        "        f = d.get('sharpness')\n"
        "    elif isinstance(ev, TileDone):\n"
        "        print(ev.correlation, ev.phase)\n"
        "    if ev.kind == 'failed':\n"
        "        print(ev.data['error'], ev.output)\n"
    )
    found = check_source(bad)
    assert len(found) == 4, found  # events carry no untyped ``data`` dict any more
    text = "\n".join(found)
    assert "'sharpness'" in text and "ev.correlation" in text and "ev.output" in text
    assert "ev.data is not a field" in text
    ok = "def on(ev):\n    if isinstance(ev, PairStored):\n        print(ev.focus_score)\n"
    assert check_source(ok) == []


def test_pair_stored_carries_correlation_and_focus() -> None:
    names = {f.name for f in dataclasses.fields(eng.PairStored)}
    assert {"correlation", "focus_score", "lr_focus_score", "pair_id", "tile"} <= names
