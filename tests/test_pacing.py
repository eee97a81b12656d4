"""Slides write pacing against the fake's per-minute write quota."""

import pytest

from deckgen.fill import SlidesAccess
from deckgen.llm.limits import Pacer
from deckgen.quotas import MemoryQuota, WriteLimits


def test_a_steady_pace_never_puts_more_than_the_quota_in_a_minute():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    pacer = Pacer(59, None, 10, lambda: now[0], sleep, burst=1)
    stamps = []
    for _ in range(200):
        pacer.acquire(0)
        pacer.release()
        stamps.append(now[0])
    for i, start in enumerate(stamps):
        in_window = sum(1 for t in stamps[i:] if t < start + 60)
        assert in_window <= 60


def test_the_fake_answers_429_past_its_write_quota(google, service_account_file, specs):
    from deckgen.writers.slides import SlidesError, SlidesWriter, service_account_credentials
    from tests.samples import sample_deck
    from tests.slides_fixtures import realistic_template

    google.writes_per_minute = 2
    decks = [google.add_presentation(realistic_template(), owner_token="service-account")
             for _ in range(3)]
    writer = SlidesWriter(service_account_credentials(service_account_file),
                          slides_endpoint=google.url, drive_endpoint=google.url, retries=0)
    for deck in decks[:2]:
        writer.write(deck, sample_deck(specs))
    with pytest.raises(SlidesError, match="HTTP 429"):
        writer.write(decks[2], sample_deck(specs))
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    access = SlidesAccess(None, None, None, quota=MemoryQuota(WriteLimits(2, 600),
                                                              clock=lambda: now[0]),
                          sleep=sleep)
    for _ in range(3):
        access.pace(None)
    assert slept == [WriteLimits().window]  # the third write waits for the window to move
