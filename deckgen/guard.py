"""The grounding guard in the generation path: repair, then drop, then flag.

After a section's answer is parsed (and before it is fitted and written), its claims are
checked against the brief (deckgen.grounding). Unsupported ones get one repair turn that
names them; what remains is removed by dropping the items that hold it while the section
keeps its minimum; otherwise the section is written with the claims visibly marked and its
status `ungrounded`. Text lifted from instruction-like passages of the brief (prompt
injection) is never written, not even marked: it is cut out. Every step is recorded in the
section's `grounding` report, naming the claims, so no door writes a flagged deck silently."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from deckgen.brief import Brief
from deckgen.errors import OutputError
from deckgen.grounding import Claim, Grounding, drop_items, mark_claims
from deckgen.sections import SectionSpec

Content = dict[str, Any]


class GroundingError(OutputError):
    """A section kept unsupported text that may not be written (another client's facts,
    injected instructions) even after its repair turn, and too little was left without it."""

    code = "ungrounded_output"

# asks the model once more, naming the claims; the new valid content, or None
AskAgain = Callable[[list[Claim]], Content | None]


def claim_view(claim: Claim) -> dict[str, Any]:
    return {"text": claim.text, "kind": claim.kind, "item": claim.item, "reason": claim.reason}


def _cut(value: Any, words: list[str]) -> Any:
    """`value` with every word in `words` removed (whole words, any case)."""
    if isinstance(value, str):
        for word in words:
            value = re.sub(rf"(?i)\b{re.escape(word)}\b", "", value)
        return re.sub(r"\s{2,}", " ", value).strip(" ,;:-")
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
        kept = _without_empty(_cut(content, [c.text for c in cut]), spec)
        report["removed"] = [claim_view(c) for c in cut]
        if kept is None:
            raise GroundingError(
                f"the {spec.name} section could not be written without text the brief does "
                f"not support: {', '.join(repr(c.text) for c in cut)}",
                details={"grounding": report})
        content = kept
    marked = mark_claims(content, [c for c in claims if c not in cut])
    return marked, report, True


def _without_empty(content: Content, spec: SectionSpec) -> Content | None:
    """Items with no words left are dropped; None when the title or the minimum is gone."""
    def words(value: Any) -> bool:
        if isinstance(value, dict):
            return all(words(v) for v in value.values())
        return bool(re.search(r"\w{2,}", str(value)))

    items = [i for i in content.get(spec.list_key, []) if words(i)]
    if len(items) < spec.min_items or not words(content.get("title", "")):
        return None
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
