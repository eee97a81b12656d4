"""Repairing or flagging a section whose claims the brief does not support: `drop_items`
removes the items that hold claims (while enough are left), `mark_claims` marks each claim
in place as "[unverified: ...]". Which claims there are is the guard's (guard.py); what the
generation path does with them, in which order, is deckgen/guard.py."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from deckgen.sections import SectionSpec

if TYPE_CHECKING:
    from deckgen.grounding.guard import Claim


def drop_items(content: dict[str, Any], claims: list[Claim],
               spec: SectionSpec) -> dict[str, Any] | None:
    """The content without the items that hold claims, or None when that would leave fewer
    than `spec.min_items` items, or when a claim sits in the title (dropping items cannot
    remove it)."""
    bad = {c.item for c in claims}
    if -1 in bad:
        return None
    items = list(content.get(spec.list_key, []))
    kept = [item for i, item in enumerate(items) if i not in bad]
    if len(kept) < spec.min_items:
        return None
    return {**content, spec.list_key: kept}


def mark(text: str, claim_texts: list[str]) -> tuple[str, list[str]]:
    """`text` with every occurrence of each claim shown as "[unverified: ...]", and the
    claims it did not hold."""
    spans: list[tuple[int, int]] = []
    missing = []
    for claim in sorted(set(claim_texts), key=len, reverse=True):
        pattern = re.compile(rf"(?<![\w]){re.escape(claim)}(?![\w])")
        hits = [m.span() for m in pattern.finditer(text)
                if not any(a < m.end() and m.start() < b for a, b in spans)]
        if not hits:
            missing.append(claim)
        spans += hits
    for a, b in sorted(spans, reverse=True):
        text = f"{text[:a]}[unverified: {text[a:b]}]{text[b:]}"
    return text, [c for c in claim_texts if c in missing]


def mark_claims(content: dict[str, Any], claims: list[Claim]) -> dict[str, Any]:
    """A copy of the content with each claim marked in place, "[unverified: 37%]"; a claim
    whose text is not found is appended to its item, so none is ever lost silently."""
    out: dict[str, Any] = {k: (list(v) if isinstance(v, list) else v) for k, v in content.items()}
    list_key = next((k for k, v in out.items() if k != "title" and isinstance(v, list)), None)
    by_item: dict[int, list[str]] = {}
    for c in claims:
        by_item.setdefault(c.item, []).append(c.text)
    for item, texts in by_item.items():
        if item == -1:
            out["title"], left = mark(str(out.get("title", "")), texts)
            out["title"] += "".join(f" [unverified: {t}]" for t in left)
            continue
        if list_key is None or not 0 <= item < len(out[list_key]):
            continue
        value = out[list_key][item]
        if isinstance(value, str):
            value, left = mark(value, texts)
            out[list_key][item] = value + "".join(f" [unverified: {t}]" for t in left)
            continue
        value = dict(value)
        left = texts
        fields = [f for f, v in value.items() if isinstance(v, str)]
        for f in fields:
            value[f], left = mark(value[f], left)
        if left and fields:
            value[fields[-1]] += "".join(f" [unverified: {t}]" for t in left)
        out[list_key][item] = value
    return out
