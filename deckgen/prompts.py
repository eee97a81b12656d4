"""Rendering a section's chat prompt from its jinja2 template (prompts/<section>.j2).

A template defines two macros, `system(spec)` and `user(brief, spec)`. The messages are the
system part, then each few-shot case as a user turn (its brief) and an assistant turn (its
finished section as JSON), then the user turn for the brief at hand: the static part first,
the brief last."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from deckgen.brief import Brief
from deckgen.errors import ConfigError
from deckgen.examples import Case
from deckgen.sections import SectionSpec

Message = dict[str, str]


class PromptRenderer:
    def __init__(self, prompts_dir: Path, overlay: Path | None = None) -> None:
        # An overlay (a prompt variant) holds only the templates it changes; the rest come
        # from prompts_dir.
        paths = [str(overlay), str(prompts_dir)] if overlay else [str(prompts_dir)]
        self.env = Environment(
            loader=FileSystemLoader(paths),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )

    def _module(self, name: str) -> Any:
        try:
            return self.env.get_template(name).module
        except TemplateError as exc:
            raise ConfigError(f"prompt template {name} is broken: {exc}") from None

    def render_prompt(self, spec: SectionSpec, brief: Brief, examples: list[Case]) -> list[Message]:
        module = self._module(f"{spec.name}.j2")
        messages = [{"role": "system", "content": str(module.system(spec)).strip()}]
        # Similarity chose the cases; they are shown in a stable (id) order, so decks whose
        # selection agrees share a longer prompt prefix for vLLM's and OpenAI's prompt caches.
        for case in sorted(examples, key=lambda c: c.id):
            messages.append({"role": "user", "content": str(module.user(case.brief, spec)).strip()})
            answer = json.dumps(case.sections[spec.name], ensure_ascii=False)
            messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": str(module.user(brief, spec)).strip()})
        return messages

    def render_shared(self, spec: SectionSpec, brief: Brief, examples: list[Case],
                      specs: list[SectionSpec]) -> list[Message]:
        """The shared-prefix layout (prompts/_shared.j2): the same turns for every section
        of a deck (rules, examples shortened to two items a slide, the brief as data), then
        the section's own instructions. `specs` are every section, in deck order."""
        shared, base = self._module("_shared.j2"), self._module("_base.j2")
        messages = [{"role": "system", "content": str(shared.system()).strip()}]
        for case in sorted(examples, key=lambda c: c.id):
            slides = "\n".join(
                f"{s.label} slide: " + json.dumps(
                    _first_items(case.sections[s.name], s.list_key, 2), ensure_ascii=False)
                for s in specs if s.name in case.sections)
            request = str(shared.example_request(str(base.brief_block(case.brief)).strip()))
            messages += [{"role": "user", "content": request.strip()},
                         {"role": "assistant", "content": slides}]
        instructions = str(self._module(f"{spec.name}.j2").system(_NoShape(spec))).strip()
        client = str(shared.client(str(base.brief_block(brief)).strip())).strip()
        task = str(shared.task(spec, instructions)).strip()
        messages.append({"role": "user", "content": f"{client}\n\n{task}"})
        return messages

    def _follow_up(self, template: str, spec: SectionSpec, answer: str,
                   **values: Any) -> list[Message]:
        shape = str(self._module("_base.j2").answer_shape(spec))
        try:
            text = self.env.get_template(template).render(spec=spec, shape=shape, **values)
        except TemplateError as exc:
            raise ConfigError(f"prompt template {template} is broken: {exc}") from None
        return [
            {"role": "assistant", "content": answer},
            {"role": "user", "content": text.strip()},
        ]

    def render_repair(self, spec: SectionSpec, answer: str, problems: list[str]) -> list[Message]:
        """The two turns that ask for a corrected answer once."""
        return self._follow_up("_repair.j2", spec, answer, problems=problems)

    def render_ground(self, spec: SectionSpec, answer: str,
                      claims: list[Any]) -> list[Message]:
        """The two turns that ask once for the section again without unsupported claims."""
        return self._follow_up("_ground.j2", spec, answer, claims=claims)

    def render_judge(self, brief_json: str, label: str, text: str) -> list[Message]:
        """The LLM judge's prompt for one section (prompts/_judge.j2)."""
        module = self._module("_judge.j2")
        return [{"role": "system", "content": str(module.system(label)).strip()},
                {"role": "user", "content": str(module.user(brief_json, label, text)).strip()}]

    def render_shorten(self, spec: SectionSpec, answer: str,
                       problems: list[str]) -> list[Message]:
        """The two turns that ask once for an answer short enough for its boxes."""
        return self._follow_up("_shorten.j2", spec, answer, problems=problems)


def _first_items(section: dict[str, Any], key: str, n: int) -> dict[str, Any]:
    return {**section, key: list(section.get(key, []))[:n]}


class _NoShape:
    """A section spec as the shared layout's templates see it: `no_shape` tells
    prompts/_base.j2 to leave the JSON shape out (the server's grammar enforces it)."""

    no_shape = True

    def __init__(self, spec: SectionSpec) -> None:
        self._spec = spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)
