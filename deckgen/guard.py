"""The grounding guard in the generation path: repair, then drop, then flag.

After a section's answer is parsed (and before it is fitted and written), its claims are
checked against the brief (deckgen.grounding). Unsupported ones get one repair turn that
names them; what remains is removed by dropping the items that hold it while the section
keeps its minimum; otherwise the section is written with the claims visibly marked and its
status `ungrounded`. Another client's names and figures, and text lifted from
instruction-like passages of the brief (prompt injection), are never written, not even
marked: each is replaced by a visible `[removed]`. Every step is recorded in the
section's `grounding` report, naming the claims, so no door writes a flagged deck silently."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from deckgen.brief import Brief
from deckgen.grounding import Claim, Grounding, drop_items, mark_claims
from deckgen.sections import SectionSpec

Content = dict[str, Any]


# asks the model once more, naming the claims; the new valid content, or None
AskAgain = Callable[[list[Claim]], Content | None]


def claim_view(claim: Claim) -> dict[str, Any]:
    return {"text": claim.text, "kind": claim.kind, "item": claim.item, "reason": claim.reason}


REMOVED = "[removed]"


def _cut(value: Any, words: list[str]) -> Any:
    """`value` with every word in `words` replaced by a visible REMOVED marker (whole words,
    any case), so the slide shows that something was taken out, never what."""
    if isinstance(value, str):
        for word in sorted(words, key=len, reverse=True):
            value = re.sub(rf"(?i)(?<![\w\[]){re.escape(word)}(?![\w\]])", REMOVED, value)
        return re.sub(rf"(?:{re.escape(REMOVED)}[\s,;:]*)+", REMOVED + " ", value).strip()
    if isinstance(value, list):
        return [_cut(v, words) for v in value]
    if isinstance(value, dict):
        return {k: _cut(v, words) for k, v in value.items()}
    return value


def guard(grounding: Grounding, spec: SectionSpec, brief: Brief, content: Content,
          ask_again: AskAgain, *, exclude_case: str | None = None,
          instructions: str = "") -> tuple[Content, dict[str, Any], bool]:
    """The content to write, the report, and whether it is still ungrounded (flagged)."""

    def check(c: Content) -> list[Claim]:
        return grounding.check(c, brief, spec, exclude_case=exclude_case,
                               instructions=instructions)

    claims = check(content)
    report: dict[str, Any] = {"action": "clean", "claims": [claim_view(c) for c in claims]}
    if not claims:
        return content, report, False
    again = ask_again(claims)
    if again is not None:
        report["action"] = "repaired"
        left = check(again)
        if not left:
            return again, report, False
        content, claims = again, left
        report["after_repair"] = [claim_view(c) for c in left]
    dropped = drop_items(content, claims, spec)
    if dropped is not None:
        report["action"] = "dropped"
        report["items_dropped"] = sum(1 for _ in _items(content)) - sum(1 for _ in
                                                                         _items(dropped))
        return dropped, report, False
    report["action"] = "flagged"
    # Another client's names and figures, and text an injected instruction asked for, are
    # never written, not even marked: they are cut out, and items left empty are dropped.
    # What is merely unsupported stays, marked, for the rep to check.
    cut = [c for c in claims if c.kind == "injection" or c.reason.startswith("from another")]
    if cut:
        content = _drop_hollow(_cut(content, [c.text for c in cut]), spec)
        report["removed"] = [claim_view(c) for c in cut]
    marked = mark_claims(content, [c for c in claims if c not in cut])
    return marked, report, True


def _drop_hollow(content: Content, spec: SectionSpec) -> Content:
    """Items left with nothing but REMOVED markers are dropped while the section keeps its
    minimum; the rest stay, markers and all, for the rep to see."""
    def hollow(value: Any) -> bool:
        if isinstance(value, dict):
            return any(hollow(v) for v in value.values())
        return not re.search(r"\w{2,}", str(value).replace(REMOVED, ""))

    items = list(content.get(spec.list_key, []))
    for item in [i for i in items if hollow(i)]:
        if len(items) <= spec.min_items:
            break
        items.remove(item)
    return {**content, spec.list_key: items}


def _items(content: Content) -> list[Any]:
    lists = [v for v in content.values() if isinstance(v, list)]
    return lists[0] if lists else []


def describe(report: dict[str, Any] | None) -> str:
    """One line for the CLI and the job result: what the guard did, naming the claims."""
    if not report or report["action"] == "clean":
        return ""
    named = ", ".join(f'"{c["text"]}"' for c in report["claims"])
    if report["action"] == "repaired":
        return f"repaired (removed {named})"
    if report["action"] == "dropped":
        return f"dropped {report.get('items_dropped', 0)} item(s) holding {named}"
    left = report.get("after_repair") or report["claims"]
    return "FLAGGED: unsupported " + ", ".join(f'"{c["text"]}"' for c in left)
