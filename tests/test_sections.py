import json
import shutil

import pytest

from deckgen.errors import ConfigError, UnknownSectionError
from deckgen.sections import load_specs, parse_output, pick_sections

SECTIONS = ["current_state", "future_state", "data", "skills", "stakeholders"]


def test_the_five_sections_in_deck_order(specs):
    assert list(specs) == SECTIONS


def test_schema_follows_the_spec(specs):
    schema = specs["current_state"].json_schema()
    bullets = schema["properties"]["bullets"]
    assert (bullets["minItems"], bullets["maxItems"]) == (3, 5)
    assert bullets["items"]["maxLength"] == 120
    people = specs["stakeholders"].json_schema()["properties"]["people"]["items"]
    assert people["required"] == ["name", "role", "cares_about"]


def test_valid_answer_in_a_code_fence_is_parsed(specs):
    answer = {"title": "Today", "bullets": [" a ", "b", "c"]}
    content, problems = parse_output(specs["current_state"],
                                     "Sure!\n```json\n" + json.dumps(answer) + "\n```")
    assert problems == []
    assert content == {"title": "Today", "bullets": ["a", "b", "c"]}


@pytest.mark.parametrize("text, expected", [
    ("no json here", "not a JSON object"),
    ('{"title": "T", "bullets": [', "not a JSON object"),
    ('{"title": "T", "bullets": ["a", "b"]}', "bullets"),
    ('{"title": "T", "bullets": ["a", "b", "' + "z" * 121 + '"]}', "bullets/2"),
    ('{"title": "T"}', "'bullets' is a required property"),
])
def test_invalid_answers_say_what_is_wrong(specs, text, expected):
    content, problems = parse_output(specs["current_state"], text)
    assert content is None
    assert any(expected in p for p in problems), problems


def test_raw_newlines_in_strings_fold_into_spaces(specs):
    content, problems = parse_output(specs["current_state"],
                                     '{"title": "Two\nlines", "bullets": ["a\n b", "c", "d"]}')
    assert problems == [] and content["title"] == "Two lines" and content["bullets"][0] == "a b"


def test_object_items_become_slide_lines(specs):
    spec = specs["stakeholders"]
    content = {"title": "Who", "people": [
        {"name": "Ana Ruiz", "role": "COO", "cares_about": "On-time delivery"}]}
    assert spec.lines(content) == ["Ana Ruiz, COO: On-time delivery"]
    assert spec.leads(content) == [len("Ana Ruiz, COO:")]
    assert specs["current_state"].leads({"bullets": ["a", "b"]}) == [0, 0]


def test_unknown_sections_are_named(specs):
    with pytest.raises(UnknownSectionError, match="pricing"):
        pick_sections(specs, ["data", "pricing"])
    assert [s.name for s in pick_sections(specs, ["skills", "data", "skills"])] == \
        ["skills", "data"]


def test_a_new_section_is_a_template_and_a_spec_entry(tmp_path, config, renderer):
    prompts = tmp_path / "prompts"
    shutil.copytree(config.prompts_dir, prompts)
    with open(prompts / "sections.yaml", "a") as f:
        f.write("\nrisks:\n  label: Risks\n  list: bullets\n  min_items: 2\n  max_items: 4\n"
                "  item: 100\n  max_prompt_tokens: 3000\n  max_completion_tokens: 300\n")
    with pytest.raises(ConfigError, match="risks.j2"):
        load_specs(prompts)
    (prompts / "risks.j2").write_text((prompts / "current_state.j2").read_text())
    specs = load_specs(prompts)
    assert list(specs)[-1] == "risks"
    assert specs["risks"].json_schema()["properties"]["bullets"]["maxItems"] == 4


def test_text_cut_at_its_limit_ends_at_a_whole_word(specs):
    spec = specs["current_state"]  # bullets of at most 120 characters, titles of 70
    said = ("Dispatchers re-key 1,400 orders a day from email into the TMS, and 60% of them "
            "need a call to confirm the pickup times with the carrier.")
    heading = "Where the hours go today: email, spreadsheets, phone calls and overtime"
    finished = "x" * 109 + " end of it."  # exactly at the limit, but a finished sentence
    assert len(finished) == 120 and len(said) > 120 and len(heading) > 70
    content, problems = parse_output(spec, json.dumps(
        {"title": heading[:70], "bullets": [said[:120], "Orders are re-keyed.", finished]}))
    assert problems == []
    first, second, third = content["bullets"]

    def ends_on_a_word(part, whole):
        return whole.startswith(part) and whole[len(part)] == " " and part[-1].isalnum()

    assert ends_on_a_word(first, said) and len(first) > 100  # only the cut word went
    assert second == "Orders are re-keyed." and third == finished
    assert ends_on_a_word(content["title"], heading)

    people = specs["stakeholders"]
    limit = people.item_fields["cares_about"]
    cares = ("Cutting the time from order to confirmed pickup, and the overtime, the errors "
             "and the calls that come with it, every single day of the week, in every depot")
    assert len(cares) > limit
    content, problems = parse_output(people, json.dumps({"title": "Who", "people": [
        {"name": "Ana Ruiz", "role": "COO", "cares_about": cares[:limit]}] * 2}))
    assert problems == [], problems
    assert ends_on_a_word(content["people"][0]["cares_about"], cares)


def test_a_blank_item_is_left_out_not_an_error(specs):
    content, problems = parse_output(specs["current_state"], json.dumps(
        {"title": "Today", "bullets": ["a", " ", "b", "c"]}))
    assert problems == [] and content["bullets"] == ["a", "b", "c"]
    content, problems = parse_output(specs["current_state"], json.dumps(
        {"title": "Today", "bullets": ["a", " ", "b"]}))  # two left: under the minimum of 3
    assert content is None and any("bullets" in p for p in problems)
