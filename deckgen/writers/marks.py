"""Where a template says text goes: the one marking model for .pptx files and Slides decks.

A person marks a place by typing a token: `{{current_state}}` (a section's items),
`{{current_state.title}}` (its headline) or a fact (`{{client}}`, `{{industry}}`,
`{{opportunity}}`, `{{date}}`). A token may stand alone in a text box, a placeholder, a
table cell or a shape inside a group; sit inline in a paragraph (`Notes: {{data}}`, the
words around it stay); or be in the speaker notes. A section token that is the first text
of its box owns the whole box (later paragraphs are hints and are replaced); one that shares
its box with other text replaces only its own paragraph, or only itself when inline.

`check_pptx_template` / `check_slides_template` open and validate a template before any
model time is spent: a file that is not a usable .pptx, or a template without a single
section mark, is a TemplateError in plain words; tokens that name nothing are listed with a
did-you-mean. Both writers find their targets with the same functions (`pptx_marks`,
`slides_marks`), so what the check promises is what gets written.

The shared rules live in marking.py, the .pptx side in pptx_marks.py and the Slides side in
slides_marks.py; this module gathers their public names, so callers import from one place."""

from deckgen.writers.marking import (
    FACTS,
    HOW_TO_MARK,
    NAME,
    TOKEN,
    Mark,
    TemplateCheck,
    classify,
    did_you_mean,
    marks_in,
    summarize,
)
from deckgen.writers.pptx_marks import (
    DEFAULT_TEMPLATE,
    Container,
    check_pptx_template,
    mark_box,
    open_pptx,
    paragraph_runs,
    paragraphs_of,
    pptx_boxes,
    pptx_containers,
    pptx_marks,
)
from deckgen.writers.slides_marks import (
    SlidesContainer,
    check_slides_template,
    slides_containers,
    slides_marks,
    slides_paragraphs,
    slides_text,
)

__all__ = ["DEFAULT_TEMPLATE", "FACTS", "HOW_TO_MARK", "NAME", "TOKEN", "Container", "Mark",
           "SlidesContainer", "TemplateCheck", "check_pptx_template", "check_slides_template",
           "classify", "did_you_mean", "mark_box", "marks_in", "open_pptx", "paragraph_runs",
           "paragraphs_of", "pptx_boxes", "pptx_containers", "pptx_marks", "slides_containers",
           "slides_marks", "slides_paragraphs", "slides_text", "summarize"]
