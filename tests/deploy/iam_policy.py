"""Just enough of IAM's policy evaluation to check that a role allows the calls our code makes.

Allow statements only (the roles here have no Deny); an action must be listed exactly, a resource
matches the statement's ARN patterns (``*`` and ``?``). Conditions: ``StringEquals`` on
``aws:ResourceTag/KEY`` (the tags the resource has) and ``aws:RequestTag/KEY`` (the tags the call
sets). Any other condition fails the test rather than being guessed at.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed(
    documents: Iterable[Mapping[str, Any]],
    action: str,
    resource: str,
    tags: Mapping[str, str] | None = None,
    request_tags: Mapping[str, str] | None = None,
) -> bool:
    for document in documents:
        for statement in as_list(document["Statement"]):
            if statement["Effect"] != "Allow" or action not in as_list(statement["Action"]):
                continue
            if not any(fnmatch.fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"])):
                continue
            if all(
                _holds(operator, values, tags or {}, request_tags or {})
                for operator, values in statement.get("Condition", {}).items()
            ):
                return True
    return False


def _holds(operator: str, values: Mapping[str, Any], tags: Mapping[str, str], request_tags: Mapping[str, str]) -> bool:
    assert operator == "StringEquals", f"this evaluator cannot evaluate {operator}"
    for key, expected in values.items():
        if key.startswith("aws:ResourceTag/"):
            found = tags.get(key.removeprefix("aws:ResourceTag/"))
        elif key.startswith("aws:RequestTag/"):
            found = request_tags.get(key.removeprefix("aws:RequestTag/"))
        else:
            raise AssertionError(f"this evaluator cannot evaluate {key}")
        if found not in as_list(expected):
            return False
    return True
