"""Audiences: named conditions over the scored table, their members, and who entered or left.

An audiences file (YAML) maps an audience name to a condition::

    at_risk_vip: high_value and churn_risk_band == "high"
    cheap_subscribers: newsletter == "subscribed" and clv_12m < 100 and predicted_purchases_12m < 1
    vip_fading: m_score >= 4 and r_score_from == 5 and r_score_to == 4

A condition is a small language, parsed with Python's own parser and then checked node by
node against an allow-list; nothing is ever evaluated as Python:

- column names: the scored columns, the contact attributes and, with a previous table, the
  migration columns ``<field>_from`` / ``<field>_to`` (``r_score``, ``f_score``, ``m_score``,
  ``rfm_cell``, ``rfm_group``, ``rfm_segment``);
- literal numbers, 'text' or "text", ``true`` / ``false`` (or ``True`` / ``False``), and
  lists of literals for ``in`` / ``not in``;
- comparisons ``== != < <= > >=`` (chains such as ``1 <= r_score <= 3`` too), ``in``,
  ``not in``, and ``and``, ``or``, ``not``, parentheses. A boolean column alone is a test.

A comparison with a missing value is unknown, as in SQL (``and``, ``or`` and ``not`` follow
SQL's three-valued logic), and only a condition that is true picks a contact: neither
``clv_12m < 100`` nor ``not clv_12m >= 100`` picks a contact without a CLV. Text compared
with a column of labels clvcast writes (segments, groups, cells, risk bands) must be one
of its labels: ``rfm_segment == "Champions"`` would pick no one, week after week.
Function calls, attribute access, indexing, arithmetic and anything else are refused with
one line naming the audience and what to change, before any work.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clvcast.errors import InputError
from clvcast.text_ids import isin_ids

# The kinds of values a column holds, for checking comparisons before any work.
NUMBER, TEXT, BOOLEAN, DATE = "number", "text", "boolean", "date"

_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_LITERAL_NAMES = {"true": True, "false": False, "True": True, "False": False}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ALLOWED = (
    "column names, literal numbers and 'text', true/false, lists of literals, comparisons "
    "(== != < <= > >= in, not in), and, or, not, parentheses"
)


def column_kind(dtype: Any) -> str:
    """The kind of values a pandas dtype holds (number, text, boolean or date)."""
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMBER
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DATE
    return TEXT


def kinds_of(frame: pd.DataFrame) -> dict[str, str]:
    """Column name -> kind for every column of ``frame``."""
    return {str(name): column_kind(dtype) for name, dtype in frame.dtypes.items()}


@dataclass(frozen=True)
class Audience:
    """One audience: its name, its condition as written, and the parsed condition."""

    name: str
    condition: str
    tree: ast.Expression
    columns: frozenset[str]

    def uses_any(self, columns: Iterable[str]) -> bool:
        """Whether the condition reads any of ``columns``."""
        return bool(self.columns & set(columns))

    def members(self, frame: pd.DataFrame) -> pd.Series:
        """Boolean Series over ``frame``'s rows: who is in the audience."""
        result = _evaluate(self.tree.body, frame)
        if not isinstance(result, pd.Series):  # a condition of literals only
            result = pd.Series(bool(result), index=frame.index)
        return result.fillna(False).astype(bool)


def parse_condition(
    name: str,
    condition: object,
    kinds: Mapping[str, str],
    labels: Mapping[str, frozenset[str]] | None = None,
) -> Audience:
    """Parse and check one audience's condition against the columns ``kinds`` names.

    Raises :class:`~clvcast.errors.InputError` with one line for any syntax error, any
    construct outside the allow-list, any unknown column, any comparison of a column with a
    literal of another kind (a text column with a number, say) or of a column of
    ``labels`` (column -> every value it can hold) with a text that is none of them.
    """
    where = f"audience '{name}'"
    if not isinstance(condition, str) or not condition.strip():
        raise InputError(f"{where}: the condition must be a non-empty text, got {condition!r}.")
    text = condition.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except (RecursionError, MemoryError):
        raise InputError(f"{where}: the condition is nested too deeply; simplify it.") from None
    except SyntaxError as exc:
        hint = " (compare with ==, not =)" if re.search(r"[^=!<>]=[^=]", text) else ""
        raise InputError(
            f"{where}: cannot read the condition {text!r}: {exc.msg}{hint}; use {ALLOWED}."
        ) from None
    columns: set[str] = set()
    kind = _check(tree.body, where, kinds, columns)
    for node in ast.walk(tree.body):
        if isinstance(node, ast.Compare):
            _check_labels(node, where, labels or {})
    if kind != BOOLEAN:
        raise InputError(
            f"{where}: the condition {text!r} is a {kind} value, not a test; compare it, e.g. "
            f"{text} > 0."
        )
    return Audience(name=name, condition=text, tree=tree, columns=frozenset(columns))


def _check(node: ast.AST, where: str, kinds: Mapping[str, str], columns: set[str]) -> str:
    """Check ``node`` against the allow-list; return the kind of value it gives."""
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check_test(value, where, kinds, columns)
        return BOOLEAN
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check_test(node.operand, where, kinds, columns)
        return BOOLEAN
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            _check_comparison(op, left, right, where, kinds, columns)
        return BOOLEAN
    if isinstance(node, ast.Name):
        if node.id in kinds:
            columns.add(node.id)
            return kinds[node.id]
        if node.id in _LITERAL_NAMES:
            return BOOLEAN
        raise InputError(
            f"{where}: unknown column '{node.id}'; known columns: {', '.join(sorted(kinds))}."
        )
    if isinstance(node, ast.Constant):
        return _literal_kind(node.value, where)
    raise InputError(
        f"{where}: '{ast.unparse(node)}' is not allowed in a condition; use {ALLOWED}."
    )


def _check_test(node: ast.AST, where: str, kinds: Mapping[str, str], columns: set[str]) -> None:
    kind = _check(node, where, kinds, columns)
    if kind != BOOLEAN:
        raise InputError(
            f"{where}: '{ast.unparse(node)}' is a {kind} value, not a test; compare it "
            "(for example with == or >)."
        )


def _literal_kind(value: object, where: str) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return NUMBER
    if isinstance(value, str):
        return TEXT
    raise InputError(f"{where}: the value {value!r} is not allowed; use {ALLOWED}.")


def _check_comparison(
    op: ast.cmpop,
    left: ast.AST,
    right: ast.AST,
    where: str,
    kinds: Mapping[str, str],
    columns: set[str],
) -> None:
    shown = f"{ast.unparse(left)} {_op_text(op)} {ast.unparse(right)}"
    left_kind = _check(left, where, kinds, columns)
    if isinstance(op, ast.In | ast.NotIn):
        if not isinstance(right, ast.List | ast.Tuple | ast.Set) or not right.elts:
            raise InputError(
                f"{where}: '{shown}': 'in' needs a list of values, e.g. [4, 5] or "
                "['champions', 'loyal customers']."
            )
        for element in right.elts:
            if not isinstance(element, ast.Constant):
                raise InputError(f"{where}: '{shown}': a list may hold only literal values.")
            _agree(left_kind, _literal_kind(element.value, where), shown, where)
        return
    if type(op) not in _COMPARISONS:
        raise InputError(f"{where}: '{shown}' uses an operator that is not allowed; use {ALLOWED}.")
    right_kind = _check(right, where, kinds, columns)
    _agree(left_kind, right_kind, shown, where)
    if isinstance(op, _ORDERING) and BOOLEAN in (left_kind, right_kind):
        raise InputError(f"{where}: '{shown}': true/false values have no order; use == or !=.")
    if DATE in (left_kind, right_kind):
        for side in (left, right):
            if isinstance(side, ast.Constant):
                _date_literal(side.value, where, shown)


_EQUALITY = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _check_labels(node: ast.Compare, where: str, labels: Mapping[str, frozenset[str]]) -> None:
    """Refuse a text literal tested for (in)equality with a label column that can never
    hold it."""
    operands = [node.left, *node.comparators]
    for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
        if not isinstance(op, _EQUALITY):
            continue
        for column, other in ((left, right), (right, left)):
            if not isinstance(column, ast.Name) or column.id not in labels:
                continue
            literals = other.elts if isinstance(other, ast.List | ast.Tuple | ast.Set) else [other]
            for literal in literals:
                value = literal.value if isinstance(literal, ast.Constant) else None
                if isinstance(value, str) and value not in labels[column.id]:
                    raise InputError(_not_a_label(where, column.id, value, labels[column.id]))


def _not_a_label(where: str, column: str, value: str, values: frozenset[str]) -> str:
    near = [v for v in values if v.casefold() == value.strip().casefold()]
    hint = f"did you mean '{near[0]}'? " if near else ""
    shown = sorted(values)
    listed = ", ".join(shown[:12]) + (f" ... ({len(shown)} in all)" if len(shown) > 12 else "")
    return f"{where}: {column} is never '{value}'; {hint}its values: {listed}."


def _agree(left: str, right: str, shown: str, where: str) -> None:
    """Refuse a comparison of two kinds that cannot be compared (a date with a text is a
    date written as text, and is allowed)."""
    pair = {left, right}
    if len(pair) == 1 or pair == {DATE, TEXT}:
        return
    raise InputError(
        f"{where}: '{shown}' compares a {left} with a {right}; compare like with like "
        "(text in quotes, numbers without)."
    )


def _date_literal(value: object, where: str, shown: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise InputError(f"{where}: '{shown}': {value!r} is not a date; write it as 'YYYY-MM-DD'.")
    return stamp


def _op_text(op: ast.cmpop) -> str:
    texts = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">"}
    texts |= {ast.GtE: ">=", ast.In: "in", ast.NotIn: "not in"}
    return texts.get(type(op), type(op).__name__)


def _evaluate(node: ast.AST, frame: pd.DataFrame) -> Any:
    """Vectorised value of a checked node over ``frame`` (a Series or a literal)."""
    if isinstance(node, ast.BoolOp):
        values = [_as_test(_evaluate(value, frame), frame) for value in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        result = values[0]
        for value in values[1:]:
            result = combine(result, value)
        return result
    if isinstance(node, ast.UnaryOp):
        return ~_as_test(_evaluate(node.operand, frame), frame)
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        result = pd.Series(True, index=frame.index, dtype="boolean")
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            result &= _compare(op, left, right, frame)
        return result
    if isinstance(node, ast.Name):
        if node.id in frame.columns:
            return frame[node.id]
        return _LITERAL_NAMES[node.id]
    return node.value  # ast.Constant: checked by parse_condition


def _as_test(value: Any, frame: pd.DataFrame) -> pd.Series:
    """A test as a nullable boolean Series (missing = unknown)."""
    if isinstance(value, pd.Series):
        return value.astype("boolean")
    return pd.Series(bool(value), index=frame.index, dtype="boolean")


def _compare(op: ast.cmpop, left: ast.AST, right: ast.AST, frame: pd.DataFrame) -> pd.Series:
    """One comparison as a nullable boolean Series: unknown wherever a side is missing."""
    a = _evaluate(left, frame)
    if isinstance(op, ast.In | ast.NotIn):
        values = [element.value for element in right.elts]  # type: ignore[attr-defined]
        series = a if isinstance(a, pd.Series) else pd.Series(a, index=frame.index)
        found = series.isin([_comparable(v, series) for v in values])
        result = found if isinstance(op, ast.In) else ~found
        return _unknown_where_missing(result, [series], frame)
    b = _evaluate(right, frame)
    a, b = _comparable(a, b), _comparable(b, a)
    result = _COMPARISONS[type(op)](a, b)
    if not isinstance(result, pd.Series):
        return pd.Series(bool(result), index=frame.index, dtype="boolean")
    sides = [side for side in (a, b) if isinstance(side, pd.Series)]
    return _unknown_where_missing(result, sides, frame)


def _unknown_where_missing(
    result: pd.Series, sides: list[pd.Series], frame: pd.DataFrame
) -> pd.Series:
    missing = np.zeros(len(frame), dtype=bool)
    for side in sides:
        missing |= side.isna().to_numpy()
    values = result.astype("boolean").fillna(False).to_numpy(dtype=bool)
    return pd.Series(pd.arrays.BooleanArray(values, missing), index=frame.index)


def _comparable(value: Any, other: Any) -> Any:
    """A date literal compared with a date column becomes a timestamp."""
    if (
        isinstance(value, str)
        and isinstance(other, pd.Series)
        and pd.api.types.is_datetime64_any_dtype(other.dtype)
    ):
        stamp = pd.Timestamp(value)
        zone = getattr(other.dtype, "tz", None)
        if zone is not None and stamp.tzinfo is None:
            stamp = stamp.tz_localize(zone)
        return stamp
    return value


def check_audience_name(name: object, where: str) -> str:
    """An audience name: letters, digits and underscores, so it can name files and rows."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(
            f"{where}: the audience name {name!r} must be letters, digits and underscores, "
            "starting with a letter (e.g. at_risk_vip)."
        )
    return name


def load_audiences(
    source: str | Path | Mapping[str, str],
    kinds: Mapping[str, str],
    labels: Mapping[str, frozenset[str]] | None = None,
) -> list[Audience]:
    """The audiences of a YAML file (or a mapping), each condition parsed and checked
    (:func:`parse_condition`)."""
    where = "audiences" if isinstance(source, Mapping) else f"audiences file {Path(source).name}"
    if isinstance(source, Mapping):
        raw: object = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{where} not found: {path}.")
        import yaml

        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            problem = str(exc).splitlines()[0]
            raise InputError(f"{where}: not valid YAML ({problem}).") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(
            f"{where}: expected a mapping of audience name to condition, e.g. "
            "'at_risk_vip: high_value and churn_risk_band == \"high\"'."
        )
    return [
        parse_condition(check_audience_name(name, where), condition, kinds, labels)
        for name, condition in raw.items()
    ]


def membership(audiences: Iterable[Audience], frame: pd.DataFrame) -> pd.DataFrame:
    """Long table of members: ``audience`` and ``contact_id``, one row per member."""
    parts = []
    for audience in audiences:
        ids = frame.loc[audience.members(frame).to_numpy(), "contact_id"].astype(str)
        parts.append(pd.DataFrame({"audience": audience.name, "contact_id": ids.to_numpy()}))
    if not parts:
        return pd.DataFrame({"audience": pd.Series(dtype=str), "contact_id": pd.Series(dtype=str)})
    return pd.concat(parts, ignore_index=True)


def entered_and_left(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Who entered and who left each audience, from two membership tables.

    Columns ``audience``, ``contact_id`` and ``event`` (``entered`` or ``left``), sorted by
    audience, event and id.
    """
    keys = ["audience", "contact_id"]
    before, after = _member_keys(previous), _member_keys(current)
    entered = current.loc[~isin_ids(after, before), keys].assign(event="entered")
    left = previous.loc[~isin_ids(before, after), keys].assign(event="left")
    result = pd.concat([entered, left], ignore_index=True)
    return result.sort_values(["audience", "event", "contact_id"]).reset_index(drop=True)


def _member_keys(members: pd.DataFrame) -> pd.Series:
    """One text key per membership row, audience and contact id joined by a character
    neither holds (ASCII's unit separator), so that :func:`~clvcast.text_ids.isin_ids`
    hashes the pairs in Arrow: an outer merge on the two columns took 2 s for a million
    members."""
    audience = members["audience"].astype(str).fillna("")
    return audience + "\x1f" + members["contact_id"].astype(str).fillna("")
