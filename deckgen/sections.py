"""Section specs (loaded from prompts/sections.yaml), the JSON schema each section's answer
must match, and parsing a model's answer into validated content.

The schema is derived from the spec, so the prompt, the structured-output request and the
validator can never disagree about what a section looks like."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from deckgen.errors import ConfigError, UnknownSectionError


@dataclass(frozen=True)
class SectionSpec:
    name: str
    label: str
    title_chars: int
    list_key: str
    min_items: int
    max_items: int
    item_chars: int | None  # items are strings of at most this many characters ...
    item_fields: dict[str, int] | None  # ... or objects with these fields and limits
    line: str
    max_prompt_tokens: int
    max_completion_tokens: int

    def json_schema(self) -> dict[str, Any]:
        if self.item_fields:
            item: dict[str, Any] = {
                "type": "object",
                "properties": {
                    f: {"type": "string", "minLength": 1, "maxLength": n}
                    for f, n in self.item_fields.items()
                },
                "required": list(self.item_fields),
                "additionalProperties": False,
            }
        else:
            item = {"type": "string", "minLength": 1, "maxLength": self.item_chars}
        return {
            "type": "object",
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": self.title_chars},
                self.list_key: {
                    "type": "array",
                    "items": item,
                    "minItems": self.min_items,
                    "maxItems": self.max_items,
                },
            },
            "required": ["title", self.list_key],
            "additionalProperties": False,
        }

    def lines(self, content: dict[str, Any]) -> list[str]:
        """The section's items as slide paragraphs, one per item."""
        items = content.get(self.list_key, [])
        if not self.item_fields:
            return [str(i) for i in items]
        return [self.line.format(**item) for item in items]


    def leads(self, content: dict[str, Any]) -> list[int]:
        """For object items, how many leading characters of each line are its label (the
        text before the last field, e.g. "Ana Ruiz, COO:"), which writers set in bold."""
        if not self.item_fields:
            return [0] * len(content.get(self.list_key, []))
        head = self.line.rsplit("{", 1)[0]
        return [len(head.format(**item).rstrip()) for item in content.get(self.list_key, [])]


def _spec(name: str, raw: dict[str, Any]) -> SectionSpec:
    try:
        item = raw["item"]
        fields = {str(k): int(v) for k, v in item.items()} if isinstance(item, dict) else None
        return SectionSpec(
            name=name,
            label=str(raw.get("label", name.replace("_", " ").capitalize())),
            title_chars=int(raw.get("title_chars", 70)),
            list_key=str(raw["list"]),
            min_items=int(raw["min_items"]),
            max_items=int(raw["max_items"]),
            item_chars=None if fields else int(item),
            item_fields=fields,
            line=str(raw.get("line", "")) if fields else "{item}",
            max_prompt_tokens=int(raw["max_prompt_tokens"]),
            max_completion_tokens=int(raw["max_completion_tokens"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"section {name!r} in sections.yaml is malformed: {exc!r}") from None


def load_specs(prompts_dir: Path) -> dict[str, SectionSpec]:
    """All sections in deck order."""
    path = prompts_dir / "sections.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no section specs at {path}") from None
    specs = {name: _spec(name, body) for name, body in raw.items()}
    for name in specs:
        if not (prompts_dir / f"{name}.j2").is_file():
            raise ConfigError(f"section {name!r} has no prompt template {name}.j2")
    return specs


def pick_sections(specs: dict[str, SectionSpec], wanted: list[str] | None) -> list[SectionSpec]:
    if not wanted:
        return list(specs.values())
    unknown = [w for w in wanted if w not in specs]
    if unknown:
        raise UnknownSectionError(
            f"unknown section(s) {', '.join(unknown)}; the sections are {', '.join(specs)}"
        )
    return [specs[w] for w in dict.fromkeys(wanted)]


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_output(spec: SectionSpec, text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """Parse a model's answer. Returns (content, []) when valid, or (None, problems) where
    each problem is a sentence the repair prompt can show the model."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        return None, ["the answer is not a JSON object"]
    try:
        # strict=False: a raw newline inside a string (small models emit them) is harmless;
        # _strip folds it into a space.
        data = json.loads(body[start : end + 1], strict=False)
    except json.JSONDecodeError as exc:
        return None, [f"the answer is not valid JSON ({exc.msg} at character {exc.pos})"]
    if isinstance(data, dict):
        data = {k: _strip(v) for k, v in data.items()}
        items = data.get(spec.list_key)
        if isinstance(items, list):  # a blank item (" " folds to "") is no item, not an error
            data[spec.list_key] = [i for i in items if i != ""]
    validator = Draft202012Validator(spec.json_schema())
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "the answer"
        problems.append(f"{where}: {err.message}")
    if problems:
        return None, problems[:10]
    return whole_words(spec, data), []


_SENTENCE_END = ".!?"
_DANGLING = " ,;:-–—(/&"


def _whole(text: str, limit: int) -> str:
    """`text` as written when it is under its limit; at the limit it was most likely cut
    there (a grammar-constrained model stops a string at maxLength, "…60% of C"), so it
    ends at its last whole word instead, without a dangling comma or dash."""
    if len(text) < limit or text[-1] in _SENTENCE_END:
        return text
    cut = text.rsplit(" ", 1)[0] if " " in text else text
    return cut.rstrip(_DANGLING) or text


def whole_words(spec: SectionSpec, content: dict[str, Any]) -> dict[str, Any]:
    """No text ends mid-word: each string that reached its schema limit is cut back to its
    last whole word (the section stays valid: it only gets shorter, never empty)."""
    out = dict(content)
    out["title"] = _whole(str(content["title"]), spec.title_chars)
    items: list[Any] = []
    for item in content[spec.list_key]:
        if isinstance(item, dict) and spec.item_fields:
            items.append({k: _whole(v, spec.item_fields[k]) if isinstance(v, str) else v
                          for k, v in item.items()})
        elif isinstance(item, str) and spec.item_chars:
            items.append(_whole(item, spec.item_chars))
        else:
            items.append(item)
    out[spec.list_key] = items
    return out


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()}
    return value
