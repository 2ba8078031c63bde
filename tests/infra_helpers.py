"""CloudFormation template helpers shared by the infrastructure tests (the assertions and the real synth)."""

from __future__ import annotations

import re
from typing import Any


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def references(value: Any) -> set[str]:
    """The names `value` refers to through Ref, Fn::GetAtt or Fn::Sub."""
    if isinstance(value, list):
        return {name for item in value for name in references(item)}
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, item in value.items():
        if key == "Ref" and isinstance(item, str):
            found.add(item)
        elif key == "Fn::GetAtt":
            found.add(item[0] if isinstance(item, list) else item.split(".")[0])
        elif key == "Fn::Sub":
            text = item[0] if isinstance(item, list) else item
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!][^}]*)\}", text)}
            found |= references(item[1:] if isinstance(item, list) else [])
        else:
            found |= references(item)
    return found


def dependency_cycle(template: dict[str, Any]) -> list[str]:
    """A cycle of resources (CloudFormation's "Circular dependency between resources"), or [] without one."""
    names = set(template["Resources"])
    edges = {
        name: sorted((references(r.get("Properties", {})) | set(as_list(r.get("DependsOn", [])))) & names)
        for name, r in template["Resources"].items()
    }
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = "open"
        path.append(name)
        for target in edges[name]:
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[name] = "done"
        path.pop()
        return []

    for name in sorted(names):
        if name not in state and (cycle := visit(name)):
            return cycle
    return []
