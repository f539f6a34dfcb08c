"""Row-level lineage (issue 11 item 2, docs/rules/lineage.md): which events produced each priced
line, and the rules behind the lineage asset check.

`line_events` takes the same events, billable orders and lines as pricing and returns one row per
(line, contributing event, role), vectorised over orders (loops only over the fixed line kinds):

- `counted`: a per-event line (pick, pack, label, kitting, returns) links every event it counted;
  the events come from `billing.py::counted_events`, which the pricing counts with, so a line's
  quantity equals its number of `counted` events by construction;
- `storage_start` / `storage_end`: a storage line links the event that fixed its start (the
  earliest `order_created`, else the order's earliest event: DOMAIN §2) and the event that fixed
  its end (the earliest event of the order's completion milestone: shipped, delivered or cancelled);
- `tag`: a service or multiplier line links the order payload whose tags set the flag (the latest
  `order_created` / `order_updated` / `order_paid` payload carrying tags, as `build_orders` reads them);
- `completion`: the minimum top-up links the event that made the order billable (its subtotal was
  then under the minimum).

The same rows serve every document (docs/rules/lineage.md): a per-order invoice's lines; a
`monthly` tenant's per-order charges, each link on the line of the monthly invoice the charge's
line was summed into (`charge_lineage`); a recalculation adjustment, and the credit/debit note it
was issued as, which gets its own copy (`note_lineage`). The volume discount and the minimum fee
top-up - lines of a monthly invoice or month-close notes - come from the month's totals and link no
event: they are "not event-derived" by kind (`NOT_EVENT_DERIVED_KINDS`, `NOT_EVENT_DERIVED_REASONS`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from e2a_assets.domain.billing import (
    COUNTED_KINDS,
    EVENT_KEY,
    LINE_KINDS,
    MINIMUM_FEE_LINE,
    VOLUME_DISCOUNT_LINE,
    counted_events,
)
from e2a_assets.domain.notes import MONTH_CLOSE_REASONS
from e2a_assets.domain.orders import MILESTONE_OF, PAYLOAD_EVENT_TYPES

COUNTED, STORAGE_START, STORAGE_END, TAG, COMPLETION = "counted", "storage_start", "storage_end", "tag", "completion"
ROLES = (COUNTED, STORAGE_START, STORAGE_END, TAG, COMPLETION)
STORAGE_KINDS = ("storage", "storage_long_term")
TAG_PREFIXES = ("service_", "multiplier_")
MINIMUM_KIND = "minimum_top_up"
# Documents a lineage row belongs to: an invoice line, a recalculation adjustment, a credit/debit
# note, a per-order charge on a monthly invoice (document_number = the monthly invoice, order_id
# = the charged order, line_no = the monthly invoice's line the charge's line was summed into).
INVOICE, ADJUSTMENT, NOTE, CHARGE = "invoice", "adjustment", "note", "charge"
# What comes from the month's totals, not from events: the monthly invoice's volume discount and
# minimum fee lines, the month-close notes.
NOT_EVENT_DERIVED_KINDS = (VOLUME_DISCOUNT_LINE, MINIMUM_FEE_LINE)
NOT_EVENT_DERIVED_REASONS = MONTH_CLOSE_REASONS
LINEAGE_COLUMNS = ["tenant", "order_id", "line_no", "kind", "source", "event_id", "event_type", "role",
                   "rate_card_version"]  # fmt: skip
# The problems the lineage check reports.
QUANTITY_MISMATCH, UNLINKED_EVENT, LINKED_TWICE, MISSING_LINK, UNKNOWN_EVENT = (
    "quantity_mismatch", "unlinked_event", "event_linked_twice", "missing_link", "unknown_event")  # fmt: skip
NOTE_LINKS_DIFFER, LINKED_BUT_NOT_EVENT_DERIVED = "note_links_differ", "linked_but_not_event_derived"
# Which role each kind of line must link at least once (per-event kinds: exactly `quantity` counted events).
REQUIRED_ROLES = {
    **{k: (STORAGE_START, STORAGE_END) for k in STORAGE_KINDS},
    **{k: (TAG,) for k in LINE_KINDS if k.startswith(TAG_PREFIXES)},
    MINIMUM_KIND: (COMPLETION,),
}
_ORDER = ["occurred_at", "received_at", "event_id"]


def _unique_events(events: pd.DataFrame) -> pd.DataFrame:
    """Order events once per (tenant, source, event_id), first received copy, in time order."""
    ev = events[events["event_type"].notna() & events["order_id"].notna()]
    by = [c for c in ("received_at", "occurred_at") if c in ev.columns]
    ev = ev.sort_values(by, kind="mergesort").drop_duplicates(EVENT_KEY)
    return ev.sort_values([c for c in _ORDER if c in ev.columns], kind="mergesort")


def _first_of(ev: pd.DataFrame, mask: pd.Series, keys: list[str]) -> pd.DataFrame:
    """Per `keys`, the earliest event among `ev[mask]` (time order of `_unique_events`)."""
    return ev[mask.to_numpy()].drop_duplicates(keys, keep="first")


def _milestone_events(ev: pd.DataFrame, billable: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(start, end) event per order: the events that fixed the storage period's two ends."""
    keys = ["tenant", "order_id"]
    milestone = ev["event_type"].map(MILESTONE_OF)
    created = _first_of(ev, milestone.eq("created_at"), keys)
    anything = ev.drop_duplicates(keys, keep="first")
    start = pd.concat([created, anything]).drop_duplicates(keys, keep="first")
    basis = billable[["tenant", "order_id", "billable_basis"]]
    tagged = ev.assign(_milestone=milestone.to_numpy()).merge(basis, on=keys)
    end = tagged[tagged["_milestone"].eq(tagged["billable_basis"] + "_at").to_numpy()].drop_duplicates(keys, keep="first")
    return start, end.drop(columns=["_milestone", "billable_basis"])


def line_events(events: pd.DataFrame | None, billable: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """The events each line of `lines` (from `price_orders`) comes from, columns `LINEAGE_COLUMNS`.

    `events`: the events pricing saw (the same frame `build_billable_orders` counted, i.e. known at
    the pricing's as_of); `billable`: the priced orders (tenant, order_id, billable_basis). One row
    per (line, event, role); see the module docstring for the roles.
    """
    if events is None or events.empty or lines is None or lines.empty:
        return pd.DataFrame(columns=LINEAGE_COLUMNS)
    keys = ["tenant", "order_id"]
    line_keys = lines[[*keys, "line_no", "kind", "rate_card_version"]]
    ev = _unique_events(events[events["order_id"].isin(set(lines["order_id"]))])
    event_cols = ["source", "event_id", "event_type"]
    parts = [line_keys.merge(counted_events(ev), on=[*keys, "kind"]).assign(role=COUNTED)]
    start, end = _milestone_events(ev, billable)
    storage = line_keys[line_keys["kind"].isin(STORAGE_KINDS)]
    parts.append(storage.merge(start[[*keys, *event_cols]], on=keys).assign(role=STORAGE_START))
    parts.append(storage.merge(end[[*keys, *event_cols]], on=keys).assign(role=STORAGE_END))
    payload = ev[ev["event_type"].isin(PAYLOAD_EVENT_TYPES) & ev["tags"].notna()].drop_duplicates(keys, keep="last")
    tagged = line_keys[line_keys["kind"].str.startswith(TAG_PREFIXES)]
    parts.append(tagged.merge(payload[[*keys, *event_cols]], on=keys).assign(role=TAG))
    minimum = line_keys[line_keys["kind"].eq(MINIMUM_KIND)]
    parts.append(minimum.merge(end[[*keys, *event_cols]], on=keys).assign(role=COMPLETION))
    out = pd.concat([p[LINEAGE_COLUMNS] for p in parts], ignore_index=True)
    out["_role"] = out["role"].map({r: n for n, r in enumerate(ROLES)})
    out = out.sort_values(["tenant", "order_id", "line_no", "_role", "source", "event_id"], kind="mergesort")
    out = out.drop(columns="_role").reset_index(drop=True)
    for col in ("line_no", "rate_card_version"):
        out[col] = out[col].astype(np.int64)
    return out


def new_links(recomputed: pd.DataFrame, linked: pd.DataFrame) -> pd.DataFrame:
    """The rows of `recomputed` lineage whose (tenant, order_id, kind, source, event_id, role) no
    row of `linked` (what the order's documents already link) has: what a recalculation adds."""
    key = ["tenant", "order_id", "kind", "source", "event_id", "role"]
    if recomputed is None or recomputed.empty:
        return pd.DataFrame(columns=LINEAGE_COLUMNS)
    if linked is None or linked.empty:
        return recomputed.reset_index(drop=True)
    seen = linked[key].drop_duplicates().assign(_seen=True)
    out = recomputed.merge(seen, how="left", on=key)
    return out[out["_seen"].isna()].drop(columns="_seen").reset_index(drop=True)


def validate_line_quantities(lines: pd.DataFrame, lineage: pd.DataFrame) -> pd.DataFrame:
    """Invoice lines whose linked events do not account for them: a per-event line whose quantity
    differs from its number of `counted` events, or a line without a role it must link."""
    cols = ["tenant", "order_id", "invoice_number", "line_no", "kind", "quantity", "linked_events", "problem"]
    if lines is None or lines.empty:
        return pd.DataFrame(columns=cols)
    doc = ["invoice_number", "line_no"]
    counted = lineage[lineage["role"].eq(COUNTED)].groupby(doc).size().rename("linked_events").reset_index()
    out = lines.merge(counted, how="left", on=doc)
    out["linked_events"] = out["linked_events"].fillna(0).astype(np.int64)
    per_event = out["kind"].isin(list(COUNTED_KINDS))
    wrong = per_event & (out["linked_events"] != out["quantity"].astype(np.int64))
    problems = [out[wrong.to_numpy()].assign(problem=QUANTITY_MISMATCH)]
    # The month's totals (volume discount, minimum fee) link no event, by kind: a link is an error.
    linked = lineage[["invoice_number", "line_no"]].drop_duplicates().astype({"line_no": np.int64}).assign(_linked=True)
    totals = out[out["kind"].isin(NOT_EVENT_DERIVED_KINDS).to_numpy()].astype({"line_no": np.int64})
    totals = totals.merge(linked, on=doc)
    problems.append(totals.drop(columns="_linked").assign(problem=LINKED_BUT_NOT_EVENT_DERIVED))
    required = pd.DataFrame([(k, r) for k, roles in REQUIRED_ROLES.items() for r in roles], columns=["kind", "role"])
    have = lineage[[*doc, "role"]].drop_duplicates().astype({"line_no": np.int64}).assign(_has=True)
    need = out.astype({"line_no": np.int64}).merge(required, on="kind").merge(have, how="left", on=[*doc, "role"])
    problems.append(need[need["_has"].isna()].drop_duplicates(doc).assign(problem=MISSING_LINK))
    found = [p[cols] for p in problems if len(p)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=cols)


def validate_event_links(expected: pd.DataFrame, links: pd.DataFrame, known: pd.DataFrame | None = None) -> pd.DataFrame:
    """Billable events not linked to exactly one line. `expected`: the counted events that must be
    on a document (tenant, order_id, invoice_number, source, event_id, event_type); `links`: the
    `counted` lineage rows of the orders' invoices and adjustments (tenant, order_id, source,
    event_id, event_type, document_number); `known`: every counted event there is (`counted_events`).
    An expected event linked nowhere is `unlinked_event`; a counted event linked more than once is
    `event_linked_twice`; a link to an event `known` does not have (of that order and type) is
    `unknown_event`."""
    cols = ["tenant", "order_id", "invoice_number", "source", "event_id", "event_type", "links", "problem"]
    n = links.groupby(EVENT_KEY).size().rename("links").reset_index() if len(links) else \
        pd.DataFrame(columns=[*EVENT_KEY, "links"])  # fmt: skip
    exp = expected.merge(n, how="left", on=EVENT_KEY)
    exp["links"] = exp["links"].fillna(0).astype(np.int64)
    unlinked = exp[exp["links"].eq(0)].assign(problem=UNLINKED_EVENT)
    docs = links.rename(columns={"document_number": "invoice_number"})
    twice = docs[docs.duplicated(EVENT_KEY, keep="first")].drop_duplicates(EVENT_KEY).drop(columns="links", errors="ignore")
    twice = twice.merge(n, on=EVENT_KEY).assign(problem=LINKED_TWICE)
    found = [unlinked, twice]
    if known is not None:
        key = [*EVENT_KEY, "order_id", "event_type"]
        stray = docs.merge(known[key].drop_duplicates().assign(_known=True), how="left", on=key)
        found.append(stray[stray["_known"].isna()].drop(columns="_known").assign(problem=UNKNOWN_EVENT))
    found = [p.reindex(columns=cols) for p in found if len(p)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=cols)


def charge_lineage(links: pd.DataFrame, lines: pd.DataFrame, plan_lines: pd.DataFrame) -> pd.DataFrame:
    """The lineage of per-order charges on their monthly invoice (DOMAIN §8.3): `links` (`line_events`
    over the charged orders' priced `lines`) moved onto the line of the monthly invoice each order's
    line was summed into (`plan_lines`, `monthly.py::plan_monthly_invoices`: by kind, rate card
    version and unit price; a multiplier by kind and version). Columns `LINEAGE_COLUMNS`; the
    order_id says which charge a link belongs to."""
    if links is None or links.empty or plan_lines is None or plan_lines.empty:
        return pd.DataFrame(columns=LINEAGE_COLUMNS)
    key = ["tenant", "kind", "rate_card_version"]
    plan = plan_lines[~plan_lines["kind"].isin(NOT_EVENT_DERIVED_KINDS)].rename(columns={"line_no": "_line"})
    plan = plan.astype({"rate_card_version": np.int64, "unit_cents": np.int64})
    own = lines[["tenant", "order_id", "line_no", "kind", "rate_card_version", "unit_cents"]].astype(
        {"rate_card_version": np.int64, "unit_cents": np.int64, "line_no": np.int64})
    multiplier = own["kind"].str.startswith("multiplier_")
    by_price = own[~multiplier].merge(plan[[*key, "unit_cents", "_line"]], on=[*key, "unit_cents"])
    by_kind = own[multiplier].merge(plan.loc[plan["kind"].str.startswith("multiplier_"), [*key, "_line"]], on=key)
    mapping = pd.concat([by_price, by_kind], ignore_index=True)[["tenant", "order_id", "line_no", "_line"]]
    out = links.astype({"line_no": np.int64}).merge(mapping, on=["tenant", "order_id", "line_no"])
    out = out.drop(columns="line_no").rename(columns={"_line": "line_no"})
    out["line_no"] = out["line_no"].astype(np.int64)
    return out[LINEAGE_COLUMNS].reset_index(drop=True)


def note_lineage(adjustment_links: pd.DataFrame, notes: pd.DataFrame) -> pd.DataFrame:
    """A recalculation note's own links (DOMAIN §8.2): those of the adjustment it was issued for
    (`adjustment_links`: lineage rows with `adjustment_id`), under the note's number (`notes`:
    note_number, source_id). `line_no` stays the line of the order's recomputed pricing the events
    add to (a note has one line). Month-close notes have no adjustment, hence no links.
    Columns `LINEAGE_COLUMNS` + note_number."""
    cols = [*LINEAGE_COLUMNS, "note_number"]
    if adjustment_links is None or adjustment_links.empty or notes is None or notes.empty:
        return pd.DataFrame(columns=cols)
    source = notes[["note_number", "source_id"]].rename(columns={"source_id": "adjustment_id"})
    return adjustment_links.merge(source, on="adjustment_id")[cols].reset_index(drop=True)


def validate_note_links(notes: pd.DataFrame, note_links: pd.DataFrame, adjustment_links: pd.DataFrame) -> pd.DataFrame:
    """Notes whose links do not account for them: a recalculation note whose links are not exactly
    those of its adjustment (`note_links_differ`; `missing_link` when it has none), a note that
    is not event-derived by its reason (volume discount, minimum top-up) but links events.
    `note_links`: lineage rows with `document_number` = the note; `adjustment_links`: with
    `document_number` = the adjustment id."""
    cols = ["tenant", "order_id", "invoice_number", "note_number", "links", "linked_events", "problem"]
    if notes is None or notes.empty:
        return pd.DataFrame(columns=cols)
    key = ["line_no", "kind", "source", "event_id", "role"]

    def keyed(links: pd.DataFrame, by: str) -> pd.Series:
        if links is None or links.empty:
            return pd.Series(dtype=object)
        frame = links.astype({"line_no": np.int64})
        return frame.groupby(by)[key].apply(lambda g: frozenset(map(tuple, g.to_numpy().tolist())))

    own = keyed(note_links.rename(columns={"document_number": "note_number"}), "note_number")
    theirs = keyed(adjustment_links.rename(columns={"document_number": "source_id"}), "source_id")
    out = notes[["tenant", "order_id", "invoice_number", "note_number", "source_id", "reason"]].copy()
    mine = out["note_number"].map(own)
    wanted = out["source_id"].map(theirs)
    out["links"] = mine.map(lambda s: len(s) if isinstance(s, frozenset) else 0).astype(np.int64)
    out["linked_events"] = wanted.map(lambda s: len(s) if isinstance(s, frozenset) else 0).astype(np.int64)
    totals = out["reason"].isin(NOT_EVENT_DERIVED_REASONS)
    same = pd.Series([(a if isinstance(a, frozenset) else frozenset()) == (b if isinstance(b, frozenset) else frozenset())
                      for a, b in zip(mine, wanted)], index=out.index, dtype=bool)  # fmt: skip
    problems = [out[totals & out["links"].gt(0)].assign(problem=LINKED_BUT_NOT_EVENT_DERIVED),
                out[~totals & ~same & out["links"].eq(0)].assign(problem=MISSING_LINK),
                out[~totals & ~same & out["links"].gt(0)].assign(problem=NOTE_LINKS_DIFFER)]  # fmt: skip
    found = [p[cols] for p in problems if len(p)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=cols)
