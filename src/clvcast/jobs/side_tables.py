"""The tables ``predict`` writes next to the scored table, gathered chunk by chunk.

- ``migrations`` (with a previous table): contacts whose RFM scores, cell, group or segment
  changed, with their attributes and current ``clv_*``, ``churn_risk`` and ``high_value``;
- ``changes`` (``changed_only``): the rows a sync needs (:mod:`clvcast.changes`);
- ``audiences``: each audience's members (:mod:`clvcast.audiences`);
- ``audience_changes`` (audiences and a previous table): who entered and who left.

The scored table streams past in chunks; :class:`SideTables` keeps from each chunk only
what these tables need, so a 10M-contact run never holds the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clvcast.audiences import (
    BOOLEAN,
    DATE,
    NUMBER,
    TEXT,
    Audience,
    entered_and_left,
    kinds_of,
    load_audiences,
    membership,
)
from clvcast.changes import DEFAULT_CLV_TOLERANCE, by_contact, changed_rows, removed_rows
from clvcast.contact_table import BATCH_COLUMNS, SCORED_COLUMNS
from clvcast.errors import InputError
from clvcast.output import DATE_COLUMNS, is_sql_url, read_scored, side_target
from clvcast.rfm import MIGRATION_FIELDS, MIGRATION_INPUT_COLUMNS, label_values, rfm_migrations

_TEXT_COLUMNS = {"contact_id", "rfm_cell", "rfm_group", "rfm_segment", "churn_risk_band"}
_TEXT_COLUMNS |= {"model_name", "model_version"}
MIGRATION_CONTEXT = ("churn_risk",)  # with clv_* and high_value, carried into migrations


def scored_columns(horizon_columns: tuple[str, ...]) -> list[str]:
    """The columns of a scored table whose forecast columns are ``horizon_columns``."""
    renamed = {"predicted_purchases_12m": horizon_columns[0], "clv_12m": horizon_columns[3]}
    return [renamed.get(c, c) for c in (*SCORED_COLUMNS, *BATCH_COLUMNS)]


def _kind_by_name(column: str) -> str:
    if column in DATE_COLUMNS or column == "scored_at":
        return DATE
    if column == "high_value":
        return BOOLEAN
    return TEXT if column in _TEXT_COLUMNS else NUMBER


def expected_kinds(
    horizon_columns: tuple[str, ...], contacts: pd.DataFrame | None, migrations: bool
) -> dict[str, str]:
    """Column -> kind of the table audiences are evaluated on, known before any scoring."""
    kinds = {c: _kind_by_name(c) for c in scored_columns(horizon_columns)}
    if contacts is not None:
        kinds |= {c: k for c, k in kinds_of(contacts).items() if c != "contact_id"}
    if migrations:
        for name in MIGRATION_FIELDS:
            kinds[f"{name}_from"] = kinds[f"{name}_to"] = _kind_by_name(name)
    return kinds


# The ``<field>_from`` / ``<field>_to`` columns a condition may use with a previous table.
MIGRATION_COLUMNS = tuple(f"{name}_{end}" for name in MIGRATION_FIELDS for end in ("from", "to"))


@dataclass
class SideTables:
    """What :func:`clvcast.jobs.predict` writes next to the scored table (see the module)."""

    previous: pd.DataFrame | None
    attributes: list[str]
    changed_only: bool = False
    clv_tolerance: float = DEFAULT_CLV_TOLERANCE
    audiences: list[Audience] = field(default_factory=list)
    previous_members: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    # audience -> members, and with a previous run entered and left (after finish)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _slim: list[pd.DataFrame] = field(default_factory=list)
    _changed: list[pd.DataFrame] = field(default_factory=list)
    _members: list[pd.DataFrame] = field(default_factory=list)
    _seen: list[pd.Series] = field(default_factory=list)
    _dtypes: dict[str, Any] = field(default_factory=dict)  # the scored table's columns

    def __post_init__(self) -> None:
        # the previous table by contact id, made once: every chunk is compared against it
        self._before = None if self.previous is None else by_contact(self.previous)

    def observe(self, part: pd.DataFrame) -> None:
        """Keep what the side tables need from one chunk of the scored table."""
        if not self._dtypes:
            self._dtypes = {str(c): part[c].dtype for c in part.columns}
        if self.previous is not None:
            context = [c for c in part.columns if str(c).startswith("clv_")]
            context += [c for c in MIGRATION_CONTEXT if c in part.columns]
            self._slim.append(part[[*MIGRATION_INPUT_COLUMNS, *self.attributes, *context]])
        if self.changed_only and self._before is not None:
            self._seen.append(part["contact_id"].astype(str))
            self._changed.append(changed_rows(self._before, part, self.clv_tolerance))
        if self.audiences:
            members = membership(self.audiences, self._audience_frame(part))
            if self.attributes:  # so that a tool can match members by e-mail or phone
                known = part[["contact_id", *self.attributes]]
                known = known.assign(contact_id=known["contact_id"].astype(str))
                members = members.merge(known, on="contact_id", how="left")
            self._members.append(members)

    def _audience_frame(self, part: pd.DataFrame) -> pd.DataFrame:
        """The chunk, with the previous values as ``<field>_from`` and the current ones as
        ``<field>_to`` when a condition reads them."""
        if not any(audience.uses_any(MIGRATION_COLUMNS) for audience in self.audiences):
            return part
        if self._before is None:  # no earlier run: no change to see, every value unknown
            return part.assign(**dict.fromkeys(MIGRATION_COLUMNS, pd.NA))
        before = self._before[list(MIGRATION_FIELDS)].add_suffix("_from")
        frame = part.assign(contact_id=part["contact_id"].astype(str))
        frame = frame.join(before, on="contact_id")
        for name in MIGRATION_FIELDS:
            frame[f"{name}_to"] = frame[name]
        return frame

    def finish(self) -> dict[str, pd.DataFrame]:
        """The side tables, by name (only those asked for)."""
        tables: dict[str, pd.DataFrame] = {}
        current = pd.concat(self._slim, ignore_index=True) if self._slim else None
        if self.previous is not None:
            tables["migrations"] = rfm_migrations(self.previous, current)
        if self.changed_only and self._before is not None:
            tables["changes"] = self._changes()
        if self.audiences:
            members = pd.concat(self._members, ignore_index=True)
            members = members.sort_values(["audience", "contact_id"], kind="stable")
            tables["audiences"] = members.reset_index(drop=True)
            events = None
            if self.previous_members is not None:
                events = entered_and_left(self.previous_members, members)
                tables["audience_changes"] = self._with_attributes(events, current)
            self.counts = _audience_counts(self.audiences, members, events)
        return tables

    def _changes(self) -> pd.DataFrame:
        changed = [part for part in self._changed if len(part)]
        seen = pd.concat(self._seen, ignore_index=True) if self._seen else pd.Series([], dtype=str)
        removed = removed_rows(self._before, seen, self._dtypes)
        table = pd.concat([*changed, removed], ignore_index=True) if changed else removed
        # The removed rows' types (the scored table's, booleans and whole numbers nullable)
        # whether or not a contact was removed: booleans are always nullable here.
        return table.astype(removed.dtypes.to_dict())[[*self._dtypes, "change"]]

    def _with_attributes(self, table: pd.DataFrame, current: pd.DataFrame | None) -> pd.DataFrame:
        """``table`` (audience events) with the contacts' attributes, from ``current`` (the
        kept columns of this run) or else from the previous table (a contact that left may
        be gone), so a tool can match them."""
        if not self.attributes:
            return table
        sources = [s for s in (current, self.previous) if s is not None]
        known = [
            s[["contact_id", *self.attributes]]
            for s in sources
            if set(self.attributes) <= set(s.columns)
        ]
        if not known:
            return table
        lookup = pd.concat(known, ignore_index=True)
        lookup = lookup.assign(contact_id=lookup["contact_id"].astype(str))
        lookup = lookup.drop_duplicates("contact_id", keep="first")
        return table.merge(lookup, on="contact_id", how="left")


def _audience_counts(
    audiences: list[Audience], members: pd.DataFrame, events: pd.DataFrame | None
) -> dict[str, dict[str, int]]:
    counts = {}
    for audience in audiences:
        row = {"members": int((members["audience"] == audience.name).sum())}
        if events is not None:
            mine = events[events["audience"] == audience.name]["event"]
            row |= {"entered": int((mine == "entered").sum()), "left": int((mine == "left").sum())}
        counts[audience.name] = row
    return counts


def previous_membership(
    audiences: list[Audience],
    previous: pd.DataFrame,
    previous_source: Any,
    previous_table: str | None,
    notes: list[str],
) -> pd.DataFrame:
    """Who was in each audience at the previous run.

    When the previous run wrote an audiences table (next to the previous scored table), that
    is what the tools were given, so it is the membership: an audience it does not list had
    no members. Otherwise the conditions are evaluated on the previous scored table; one that
    reads the migration columns cannot be (the run before the previous one is not at hand),
    so all its members count as entered, and a note says so.
    """
    found = _previous_audiences(previous_source, previous_table)
    if found is not None:
        found = found[["audience", "contact_id"]].assign(contact_id=found["contact_id"].astype(str))
        return found[found["audience"].isin([a.name for a in audiences])]
    parts = [membership([], previous)]
    for audience in audiences:
        missing = sorted(audience.columns - set(previous.columns) - set(MIGRATION_COLUMNS))
        if missing:
            notes.append(
                f"audience {audience.name}: the previous table has no column(s) {missing}, so "
                "every member counts as entered"
            )
        elif audience.uses_any(MIGRATION_COLUMNS):
            notes.append(
                f"audience {audience.name}: no audiences table next to the previous table, so "
                "every member counts as entered"
            )
        else:
            parts.append(membership([audience], previous))
    return pd.concat(parts, ignore_index=True)


def _previous_audiences(source: Any, table_name: str | None) -> pd.DataFrame | None:
    """The audiences table the previous run wrote next to ``source``, if there is one."""
    if not isinstance(source, str | Path):
        return None
    target, side_table = side_target(str(source), table_name, "audiences")
    if not is_sql_url(target) and not Path(target).is_file():
        return None
    try:
        found = read_scored(target, side_table)
    except InputError:  # a SQL store without that table
        return None
    return found if {"audience", "contact_id"} <= set(found.columns) else None


def load_checked_audiences(
    source: str | Path | dict[str, str],
    horizon_columns: tuple[str, ...],
    contacts: pd.DataFrame | None,
    has_previous: bool,
    notes: list[str],
) -> list[Audience]:
    """Parse the audiences and check every column and comparison before any work."""
    from clvcast.churn.model import RISK_BANDS  # loaded already with the model's classifier

    kinds = expected_kinds(horizon_columns, contacts, migrations=True)
    labels = label_values()
    for name in MIGRATION_FIELDS:
        if name in labels:
            labels[f"{name}_from"] = labels[f"{name}_to"] = labels[name]
    labels["churn_risk_band"] = frozenset(band for band, _ in RISK_BANDS)
    audiences = load_audiences(source, kinds, labels)
    if not has_previous:
        for audience in audiences:
            if audience.uses_any(MIGRATION_COLUMNS):
                notes.append(
                    f"audience {audience.name} reads the change since the previous run and "
                    "there is no --previous: it has no members this time"
                )
    return audiences
