from deckgen.brief import parse_brief
from deckgen.examples import select_examples


def test_at_least_twelve_cases_across_industries(cases, specs):
    assert len(cases) >= 12
    assert len({c.brief.industry for c in cases}) >= 10
    for case in cases:
        assert set(case.sections) == set(specs), case.id


def test_the_most_similar_case_comes_first(cases):
    brief = parse_brief({
        "client": "Q", "industry": "Hospital",
        "notes": "Emergency department boarding, bed management and discharge delays; "
                 "patients wait for beds, Epic ADT data.",
    })
    ranked = select_examples(brief, cases, "current_state")
    assert ranked[0].case.id == "hospital-patient-flow"
    assert ranked[0].score > ranked[1].score
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)


def test_a_case_can_be_left_out(cases):
    case = cases[0]
    ranked = select_examples(case.brief, cases, "data", exclude=case.id)
    assert case.id not in [s.case.id for s in ranked]
    assert len(ranked) == len(cases) - 1
    assert select_examples(case.brief, cases, "data")[0].case.id == case.id
