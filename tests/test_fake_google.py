"""The fake Google server, driven through the real googleapiclient and google-auth clients."""

from __future__ import annotations

import json
from collections.abc import Iterator

import google_auth_httplib2
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from tests import slides_fixtures
from tests.fake_google import CHECKER, FakeGoogle

SCOPES = ["https://www.googleapis.com/auth/presentations",
          "https://www.googleapis.com/auth/drive"]


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    server = FakeGoogle().start()
    yield server
    server.stop()


@pytest.fixture
def pid(fake) -> str:
    return fake.add_presentation(slides_fixtures.realistic_template())


def slides(fake: FakeGoogle, token: str = "user-token", credentials=None):
    return build("slides", "v1", credentials=credentials or Credentials(token=token),
                 client_options={"api_endpoint": fake.url}, static_discovery=True)


def drive(fake: FakeGoogle, token: str = "user-token", credentials=None):
    return build("drive", "v3", credentials=credentials or Credentials(token=token),
                 client_options={"api_endpoint": fake.url}, static_discovery=True)


def batch(fake, pid, *requests, token="user-token", revision=None):
    body: dict = {"requests": list(requests)}
    if revision:
        body["writeControl"] = {"requiredRevisionId": revision}
    return slides(fake, token).presentations().batchUpdate(
        presentationId=pid, body=body).execute()


def error_of(call) -> tuple[int, dict]:
    with pytest.raises(HttpError) as info:
        call.execute()
    return info.value.resp.status, json.loads(info.value.content)["error"]


def elements(fake, pid, object_id) -> list[dict]:
    for slide in fake.presentations[pid]["slides"]:
        for element in slide["pageElements"]:
            if element["objectId"] == object_id:
                return element["shape"]["text"]["textElements"]
    raise KeyError(object_id)


def runs(fake, pid, object_id) -> list[tuple[int, int, str, dict]]:
    return [(e.get("startIndex", 0), e["endIndex"], e["textRun"]["content"], e["textRun"]["style"])
            for e in elements(fake, pid, object_id) if "textRun" in e]


def test_fixtures_are_valid_presentations():
    for make in (slides_fixtures.realistic_template, slides_fixtures.alt_text_template,
                 slides_fixtures.unmarked_template):
        doc = make()
        CHECKER.check(doc, {"$ref": "Presentation"})
        ids = [e["objectId"] for s in doc["slides"] for e in s["pageElements"]]
        assert len(ids) == len(set(ids))
    text = json.dumps(slides_fixtures.unmarked_template())
    assert "{{" not in text and "deckgen:" not in text


def test_get_honours_fields(fake, pid):
    service = slides(fake).presentations()
    doc = service.get(presentationId=pid,
                      fields="presentationId,revisionId,slides(objectId,pageElements)").execute()
    assert set(doc) == {"presentationId", "revisionId", "slides"}
    assert doc["revisionId"] == fake.presentations[pid]["revisionId"]
    assert set(doc["slides"][1]) == {"objectId", "pageElements"}
    assert doc["slides"][1]["pageElements"][1]["objectId"] == "cs_body"
    slim = service.get(presentationId=pid, fields="slides/pageElements/objectId").execute()
    assert slim["slides"][1]["pageElements"] == [{"objectId": "cs_title"}, {"objectId": "cs_body"}]
    assert service.get(presentationId=pid).execute() == fake.presentations[pid]
    status, error = error_of(service.get(presentationId=pid, fields="slides(objectId,pageElement)"))
    assert status == 400 and "pageElement" in error["message"]
    assert fake.calls[0]["method"] == "GET" and fake.calls[0]["path"] == f"/v1/presentations/{pid}"
    assert fake.calls[0]["token"] == "user-token"


def test_insert_and_delete_text_recompute_utf16_indices_and_keep_styles(fake, pid):
    before = runs(fake, pid, "title_prepared")
    assert [r[2] for r in before] == ["Prepared for ", "{{client}}", " by Acme Consulting\n"]
    bold = before[1][3]
    assert bold["bold"] is True and before[0][3]["bold"] is False
    # Insert before deleting, so the new text joins the bold token's run.
    reply = batch(fake, pid,
                  {"insertText": {"objectId": "title_prepared", "insertionIndex": 13,
                                  "text": "Café 😀"}},
                  {"deleteText": {"objectId": "title_prepared",
                                  "textRange": {"type": "FIXED_RANGE", "startIndex": 20,
                                                "endIndex": 30}}})
    assert reply["replies"] == [{}, {}]
    assert reply["writeControl"]["requiredRevisionId"] == fake.presentations[pid]["revisionId"]
    assert fake.shape_text(pid, "title_prepared") == "Prepared for Café 😀 by Acme Consulting\n"
    after = runs(fake, pid, "title_prepared")
    assert [(r[0], r[1], r[2]) for r in after] == [
        (0, 13, "Prepared for "), (13, 20, "Café 😀"), (20, 40, " by Acme Consulting\n")]
    assert after[1][3] == bold
    marker = elements(fake, pid, "title_prepared")[0]
    assert "startIndex" not in marker and marker["endIndex"] == 40 and "paragraphMarker" in marker


def test_delete_all_then_insert_paragraphs_copy_first_styles(fake, pid):
    old = elements(fake, pid, "stake_body")
    batch(fake, pid,
          {"deleteText": {"objectId": "stake_body", "textRange": {"type": "ALL"}}},
          {"insertText": {"objectId": "stake_body", "insertionIndex": 0,
                          "text": "Ana Ruiz, COO: waits\nBo Li, CFO: cost"}})
    new = elements(fake, pid, "stake_body")
    markers = [e for e in new if "paragraphMarker" in e]
    assert [(m.get("startIndex", 0), m["endIndex"]) for m in markers] == [(0, 21), (21, 38)]
    for m in markers:
        assert m["paragraphMarker"] == old[0]["paragraphMarker"]  # first paragraph's style, bullet
    assert [r[3] for r in runs(fake, pid, "stake_body")] == [old[1]["textRun"]["style"]] * 2
    assert "kix.stake" in fake.presentations[pid]["slides"][4]["pageElements"][3]["shape"][
        "text"]["lists"]
    batch(fake, pid, {"deleteText": {"objectId": "stake_body", "textRange": {"type": "ALL"}}})
    assert fake.shape_text(pid, "stake_body") == "\n"  # the final newline always stays


def test_styles_bullets_alt_text_and_replace_all(fake, pid):
    batch(fake, pid,
          {"updateTextStyle": {"objectId": "cs_body", "fields": "bold,fontSize",
                               "textRange": {"type": "FIXED_RANGE", "startIndex": 2,
                                             "endIndex": 15},
                               "style": {"bold": True}}},
          {"updateParagraphStyle": {"objectId": "cs_body", "fields": "alignment",
                                    "textRange": {"type": "ALL"},
                                    "style": {"alignment": "CENTER"}}},
          {"createParagraphBullets": {"objectId": "cs_body", "textRange": {"type": "ALL"},
                                      "bulletPreset": "BULLET_DISC_CIRCLE_SQUARE"}},
          {"updatePageElementAltText": {"objectId": "cs_body",
                                        "description": "deckgen:current_state"}})
    cs = runs(fake, pid, "cs_body")
    assert [(r[0], r[1], r[3]["bold"], "fontSize" in r[3]) for r in cs] == [
        (0, 2, False, True), (2, 15, True, False), (15, 18, False, True)]
    marker = elements(fake, pid, "cs_body")[0]["paragraphMarker"]
    assert marker["style"]["alignment"] == "CENTER" and marker["bullet"]["glyph"] == "●"
    assert marker["bullet"]["listId"] in fake.presentations[pid]["slides"][1]["pageElements"][1][
        "shape"]["text"]["lists"]
    assert fake.presentations[pid]["slides"][1]["pageElements"][1]["description"] == \
        "deckgen:current_state"
    batch(fake, pid, {"deleteParagraphBullets": {"objectId": "cs_body",
                                                 "textRange": {"type": "ALL"}}})
    assert "bullet" not in elements(fake, pid, "cs_body")[0]["paragraphMarker"]
    reply = batch(fake, pid, {"replaceAllText": {
        "containsText": {"text": "{{CLIENT}}", "matchCase": False},
        "replaceText": "Harbor Logistics"}})
    assert reply["replies"] == [{"replaceAllText": {"occurrencesChanged": 2}}]
    assert fake.shape_text(pid, "title_client") == "Harbor Logistics\n"
    assert runs(fake, pid, "title_prepared")[1][2:] == (
        "Harbor Logistics", runs(fake, pid, "title_prepared")[1][3])
    assert runs(fake, pid, "title_prepared")[1][3]["bold"] is True
    reply = batch(fake, pid, {"replaceAllText": {
        "containsText": {"text": "{{DATA}}", "matchCase": True}, "replaceText": "x"}})
    assert reply["replies"] == [{"replaceAllText": {}}]


def test_batch_update_is_atomic(fake, pid):
    before = json.dumps(fake.presentations[pid], sort_keys=True)
    request = slides(fake).presentations().batchUpdate(presentationId=pid, body={"requests": [
        {"insertText": {"objectId": "cs_body", "insertionIndex": 0, "text": "changed "}},
        {"deleteText": {"objectId": "nope", "textRange": {"type": "ALL"}}}]})
    status, error = error_of(request)
    assert status == 400 and error["status"] == "INVALID_ARGUMENT"
    assert "The object (nope) could not be found." in error["message"]
    assert "requests[1]" in error["message"]
    assert json.dumps(fake.presentations[pid], sort_keys=True) == before
    status, error = error_of(slides(fake).presentations().batchUpdate(
        presentationId=pid, body={"requests": [
            {"insertText": {"objectId": "cs_body", "insertionIndex": 99, "text": "x"}}]}))
    assert status == 400 and "insertion index" in error["message"]
    assert json.dumps(fake.presentations[pid], sort_keys=True) == before


def test_revision_conflict_after_a_person_edits(fake, pid):
    revision = fake.presentations[pid]["revisionId"]
    style = runs(fake, pid, "cs_body")[0][3]
    fake.edit_text(pid, "cs_body", "Typed by a person")
    assert fake.shape_text(pid, "cs_body") == "Typed by a person\n"
    assert runs(fake, pid, "cs_body")[0][3] == style
    assert fake.presentations[pid]["revisionId"] != revision
    request = {"insertText": {"objectId": "cs_body", "insertionIndex": 0, "text": "x"}}
    with pytest.raises(HttpError) as info:
        batch(fake, pid, request, revision=revision)
    error = json.loads(info.value.content)["error"]
    assert info.value.resp.status == 400 and error["status"] == "FAILED_PRECONDITION"
    assert "does not match the latest revision" in error["message"]
    assert fake.shape_text(pid, "cs_body") == "Typed by a person\n"
    reply = batch(fake, pid, request, revision=fake.presentations[pid]["revisionId"])
    assert fake.shape_text(pid, "cs_body") == "xTyped by a person\n"
    assert reply["writeControl"]["requiredRevisionId"] == fake.presentations[pid]["revisionId"]


@pytest.mark.parametrize(("request_", "needle"), [
    ({"insertText": {"objectId": "cs_body", "txt": "x"}},
     "Unknown name \"txt\" at 'requests[0].insert_text': Cannot find field."),
    ({"updateTextStyle": {"objectId": "cs_body", "fields": "bold",
                          "textRange": {"type": "ALL"}, "style": {"fontSize": {"size": 3}}}},
     "Unknown name \"size\" at 'requests[0].update_text_style.style.font_size'"),
    ({"insertText": {"objectId": "cs_body", "insertionIndex": "zero"}},
     "'requests[0].insert_text.insertion_index'"),
    ({"deleteText": {"objectId": "cs_body", "textRange": {"type": "EVERYTHING"}}},
     "'requests[0].delete_text.text_range.type'"),
    ({"insertText": {"objectId": "cs_body"}, "deleteText": {"objectId": "cs_body"}},
     "requests[0]"),
    ({}, "Invalid requests[0]: No request set."),
    ({"createSlide": {}}, "request kind createSlide not supported by the fake"),
])
def test_invalid_bodies_are_rejected_with_the_path(fake, pid, request_, needle):
    status, error = error_of(slides(fake).presentations().batchUpdate(
        presentationId=pid, body={"requests": [request_]}))
    assert status == 400 and error["status"] == "INVALID_ARGUMENT"
    assert needle in error["message"]


def test_snake_case_names_are_accepted_like_google_does(fake, pid):
    batch(fake, pid, {"insert_text": {"object_id": "cs_body", "insertion_index": 0,
                                      "text": "A "}})
    assert fake.shape_text(pid, "cs_body") == "A {{current_state}}\n"


def test_expired_token_is_401(fake, pid):
    fake.grant(pid, "expired-token")
    http = google_auth_httplib2.AuthorizedHttp(Credentials(token="expired-token"),
                                               max_refresh_attempts=0)
    service = build("slides", "v1", http=http, client_options={"api_endpoint": fake.url},
                    static_discovery=True)
    status, error = error_of(service.presentations().get(presentationId=pid))
    assert status == 401 and error["status"] == "UNAUTHENTICATED"
    assert error["message"].startswith("Request had invalid authentication credentials")
    with pytest.raises(RefreshError):  # what a plain access-token credential does on 401
        slides(fake, "expired-token").presentations().get(presentationId=pid).execute()
    http = google_auth_httplib2.AuthorizedHttp(Credentials(token="never-issued"),
                                               max_refresh_attempts=0)
    service = build("slides", "v1", http=http, client_options={"api_endpoint": fake.url},
                    static_discovery=True)
    assert error_of(service.presentations().get(presentationId=pid))[0] == 401


def test_token_without_access_is_403_and_unknown_id_is_404(fake, pid):
    other = fake.add_presentation(slides_fixtures.unmarked_template(), owner_token="other-token")
    service = slides(fake, "other-token").presentations()
    status, error = error_of(service.get(presentationId=pid))
    assert (status, error["status"]) == (403, "PERMISSION_DENIED")
    assert error["message"] == "The caller does not have permission"
    status, error = error_of(service.batchUpdate(presentationId=pid, body={"requests": []}))
    assert status == 403
    status, error = error_of(service.get(presentationId="no-such-deck"))
    assert (status, error["status"], error["message"]) == (
        404, "NOT_FOUND", "Requested entity was not found.")
    assert service.get(presentationId=other, fields="title").execute() == {"title": "QBR"}
    fake.grant(pid, "other-token")
    assert service.get(presentationId=pid, fields="presentationId").execute() == {
        "presentationId": pid}


def test_drive_copy(fake, pid):
    files = drive(fake).files()
    copied = files.copy(fileId=pid, body={"name": "Harbor Logistics pitch"},
                        supportsAllDrives=True).execute()
    assert copied["name"] == "Harbor Logistics pitch"
    assert copied["mimeType"] == "application/vnd.google-apps.presentation"
    new = copied["id"]
    assert new != pid and fake.presentations[new]["title"] == "Harbor Logistics pitch"
    assert fake.presentations[new]["slides"] == fake.presentations[pid]["slides"]
    batch(fake, new, {"insertText": {"objectId": "cs_body", "insertionIndex": 0, "text": "x"}})
    assert fake.shape_text(pid, "cs_body") == "{{current_state}}\n"
    assert fake.calls[0]["path"] == f"/files/{pid}/copy"
    assert fake.calls[0]["body"] == {"name": "Harbor Logistics pitch"}
    slim = files.copy(fileId=pid, body={"name": "b"}, fields="id,webViewLink").execute()
    assert set(slim) == {"id", "webViewLink"}
    fake.add_presentation(slides_fixtures.unmarked_template(), owner_token="other-token")
    status, error = error_of(drive(fake, "other-token").files().copy(fileId=pid, body={}))
    assert status == 404 and error["message"] == f"File not found: {pid}."  # Drive hides it
    assert error_of(files.copy(fileId="missing", body={}))[0] == 404


def test_service_account_token_flow(fake, pid):
    info = fake.service_account_info()
    creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    sa_deck = fake.add_presentation(slides_fixtures.realistic_template(),
                                    owner_token="service-account")
    service = slides(fake, credentials=creds).presentations()
    doc = service.get(presentationId=sa_deck, fields="presentationId").execute()
    assert doc == {"presentationId": sa_deck}
    token_call = fake.calls[0]
    assert token_call["path"] == "/token" and token_call["body"]["grant_type"] == \
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert fake.calls[1]["token"] == "sa-token-1"
    assert error_of(service.get(presentationId=pid))[0] == 403  # shared with the user only
    fake.grant(pid, "service-account")
    assert service.get(presentationId=pid, fields="title").execute() == {
        "title": "Pitch template"}
    copied = drive(fake, credentials=creds).files().copy(fileId=pid, body={"name": "c"}).execute()
    assert service.get(presentationId=copied["id"], fields="title").execute() == {"title": "c"}
    narrow = service_account.Credentials.from_service_account_info(
        info, scopes=["https://www.googleapis.com/auth/presentations"])
    status, error = error_of(drive(fake, credentials=narrow).files().copy(fileId=pid, body={}))
    assert status == 403 and "insufficient authentication scopes" in error["message"]


def test_fail_next_429_then_recovers(fake, pid):
    fake.fail_next(429, headers={"Retry-After": "7"}, times=2)
    service = slides(fake).presentations()
    for _ in range(2):
        with pytest.raises(HttpError) as info:
            service.get(presentationId=pid, fields="title").execute()
        assert info.value.resp.status == 429 and info.value.resp["retry-after"] == "7"
        error = json.loads(info.value.content)["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED"
        assert "Quota exceeded for quota metric 'Read requests'" in error["message"]
    assert service.get(presentationId=pid, fields="title").execute() == {"title": "Pitch template"}
    fake.fail_next(503, "Backend unavailable")
    status, error = error_of(service.batchUpdate(presentationId=pid, body={"requests": []}))
    assert (status, error["status"], error["message"]) == (503, "UNAVAILABLE",
                                                           "Backend unavailable")
    assert [c["status"] for c in fake.calls] == [429, 429, 200, 503]
