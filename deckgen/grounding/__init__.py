"""The grounding guard: nothing in a client's deck that the client's brief does not support.

`Grounding.from_cases(cases)` is built once; `check` lists a section's unsupported claims
(names, figures, dates, text lifted from injected instructions), `drop_items` and
`mark_claims` repair or flag a section, `sources` finds each item's supporting words in the
brief for the speaker notes, and `injection_passages` finds instruction-like text in a brief.
Pure functions: no I/O, no model calls."""

from deckgen.grounding.guard import (
                                     INJECTED,
                                     NOT_IN_BRIEF,
                                     Claim,
                                     Grounding,
                                     drop_items,
                                     foreign_reason,
                                     mark_claims,
)
from deckgen.grounding.injection import injection_passages
from deckgen.grounding.numbers import Quantity, quantities, same
from deckgen.grounding.sources import brief_texts, sources

__all__ = ["INJECTED", "NOT_IN_BRIEF", "Claim", "Grounding", "Quantity", "brief_texts",
           "drop_items", "foreign_reason", "injection_passages", "mark_claims", "quantities",
           "same", "sources"]
