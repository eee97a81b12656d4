"""The sidebar as a sales rep meets it, in a real browser.

appsscript/Sidebar.html is expanded the way HtmlService would (its `<?!= include('…') ?>`
scriptlets replaced by the named files as they are, `<?!= bootJson ?>` by the boot object the
menu hands it), opened in headless Debian Chromium driven by Selenium, and checked through
what is on screen. `google.script.run` is replaced by a stub: each server call is recorded
and the test answers it, with the strings the real server code would send (the add-on's own
.js files, loaded into the page inside a closure, summarise jobs, preview a brief looked up in
a CRM and word errors). The page's long timers (the 2 s poll, the 5 s watch of a CRM
write-back) wait for the test to run them, so no test sleeps.

Needs selenium (pip) and Debian's chromium and chromium-driver (`make browser-tools`); skipped
with a message saying which is missing otherwise. The page loads nothing from the network:
Google's add-ons1.css is refused by the host resolver rule below (Styles.html, which holds
everything the sidebar relies on, is inlined like in Apps Script)."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
except ImportError:  # the skip below says what to install
    webdriver = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
APPSSCRIPT = ROOT / "appsscript"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BACKEND = "https://deckgen.example.com"

_missing = [what for what, present in (
    ("selenium (pip install 'selenium>=4.20')", webdriver is not None),
    ("chromium (apt-get install chromium)", Path(CHROMIUM).is_file()),
    ("chromedriver (apt-get install chromium-driver)", Path(CHROMEDRIVER).is_file()),
) if not present]
pytestmark = pytest.mark.skipif(
    bool(_missing), reason="the sidebar browser test needs " + ", ".join(_missing))


# --- the page, as HtmlService would serve it ---------------------------------------------

SCRIPTLET = re.compile(r"<\?(!?=)?(.*?)\?>", re.S)
INCLUDE = re.compile(r"include\(\s*'([A-Za-z0-9_]+)'\s*\)")


def expand(name: str, variables: dict[str, str]) -> str:
    """`HtmlService.createTemplateFromFile(name)` with `variables` set on it, evaluated.
    Only printing scriptlets are expected: `<?!= … ?>` prints as is, `<?= … ?>` escaped. An
    included file comes back as it is (createHtmlOutputFromFile does not evaluate it)."""

    def one(m: re.Match[str]) -> str:
        kind, expr = m.group(1), m.group(2).strip()
        if kind is None:
            raise ValueError(f"{name}.html: this test cannot run the code scriptlet <? {expr} ?>")
        if (inc := INCLUDE.fullmatch(expr)) is not None:
            value = (APPSSCRIPT / f"{inc[1]}.html").read_text(encoding="utf-8")
        elif expr in variables:
            value = variables[expr]
        else:
            raise ValueError(f"{name}.html: unknown scriptlet expression {expr!r}")
        return value if kind == "!=" else html.escape(value)

    return SCRIPTLET.sub(one, (APPSSCRIPT / f"{name}.html").read_text(encoding="utf-8"))


def json_for_html(value: Any) -> str:
    """What Menu.js's jsonForHtml_ makes of the boot object."""
    text = json.dumps(value, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def server_code() -> str:
    """The add-on's server-side files, run inside a closure so that none of their names
    reaches the page; the closure hands out the functions the stub answers with."""
    files = "\n".join(p.read_text(encoding="utf-8") for p in sorted(APPSSCRIPT.glob("*.js")))
    code = ("window.__server = (function () {\n" + files + "\n"
            "return { summarizeJob_: summarizeJob_, buildJobBody_: buildJobBody_,"
            " describeBackendError_: describeBackendError_, crmTarget_: crmTarget_,"
            " previewOfResolved_: previewOfResolved_ };\n})();")
    # Inside <script>, "</script" (in a comment, say) would end the element early, and "<!--"
    # could keep the real end from ending it. Both escaped only appear in comments here.
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.I).replace("<!--", "<\\!--")


# google.script.run, recorded; and the page's long timers, held until the test runs them.
STUB = """
(function () {
  var calls = [];
  function runner(success, failure) {
    return new Proxy({}, {
      get: function (_, name) {
        if (name === 'withSuccessHandler') return function (fn) { return runner(fn, failure); };
        if (name === 'withFailureHandler') return function (fn) { return runner(success, fn); };
        if (name === 'withUserObject') return function () { return runner(success, failure); };
        return function () {
          var args = JSON.parse(JSON.stringify(Array.prototype.slice.call(arguments)));
          calls.push({ name: String(name), args: args, success: success, failure: failure,
                       answered: false });
        };
      },
    });
  }
  window.google = { script: { run: runner(null, null) } };

  function take(i) {
    var call = calls[i];
    if (!call || call.answered) throw new Error('no unanswered server call #' + i);
    call.answered = true;
    return call;
  }
  window.__stub = {
    calls: function () {
      return calls.map(function (c) {
        return { name: c.name, args: c.args, answered: c.answered };
      });
    },
    succeed: function (i, value) { take(i).success(value); },
    fail: function (i, message) { take(i).failure(new Error(message)); },
  };

  var realSetTimeout = window.setTimeout.bind(window);
  var realClearTimeout = window.clearTimeout.bind(window);
  var held = [];
  var nextId = 1e6;
  window.setTimeout = function (fn, ms) {
    if (!(ms >= 1000)) return realSetTimeout(fn, ms);
    held.push({ id: nextId, fn: fn, ms: ms });
    return nextId++;
  };
  window.clearTimeout = function (id) {
    held = held.filter(function (t) { return t.id !== id; });
    realClearTimeout(id);
  };
  window.__clock = {
    held: function () { return held.map(function (t) { return t.ms; }); },
    run: function () {
      var due = held;
      held = [];
      due.forEach(function (t) { t.fn(); });
      return due.length;
    },
  };
})();
"""


def sections_yaml() -> list[dict[str, str]]:
    raw = yaml.safe_load((ROOT / "prompts" / "sections.yaml").read_text(encoding="utf-8"))
    return [{"name": name, "label": body.get("label", name.replace("_", " ").capitalize())}
            for name, body in raw.items()]


def sections_js() -> list[dict[str, str]]:
    """The list the add-on carries (generated from sections.yaml): what the sidebar offers
    when the backend cannot be asked, and equal to what GET /v1/sections answers."""
    text = (APPSSCRIPT / "Sections.js").read_text(encoding="utf-8")
    found = re.search(r"^var SECTIONS = (\[.*?\]);$", text, re.S | re.M)
    assert found, "appsscript/Sections.js holds no `var SECTIONS = [...];`"
    return json.loads(found[1])


# --- the browser ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=300,1000",  # a Slides sidebar is 300 px
                "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing from the network, at once
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Sidebar:
    """One opened sidebar: what is on screen, and the server calls it made."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def el(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        calls = self.js("return window.__stub.calls();")
        return [dict(c, index=i) for i, c in enumerate(calls) if name in (None, c["name"])]

    def pending(self, name: str) -> dict[str, Any]:
        """The one unanswered call to `name` (fails if there is not exactly one)."""
        waiting = [c for c in self.calls(name) if not c["answered"]]
        assert len(waiting) == 1, f"expected one unanswered {name}() call, got {self.calls()}"
        return waiting[0]

    def succeed(self, name: str, value: Any) -> None:
        self.js("window.__stub.succeed(arguments[0], arguments[1]);",
                self.pending(name)["index"], value)

    def fail(self, name: str, message: str) -> None:
        self.js("window.__stub.fail(arguments[0], arguments[1]);",
                self.pending(name)["index"], message)

    def answer_with_job(self, name: str, job: dict[str, Any]) -> None:
        """Answer pollJob or cancelJob as Server.js does: the job the backend reported plus
        the real summarizeJob_'s summary of it."""
        self.js("var job = arguments[1];"
                "window.__stub.succeed(arguments[0], Object.assign({}, job,"
                " { summary: window.__server.summarizeJob_(job) }));",
                self.pending(name)["index"], job)

    def backend_error(self, status: int, path: str) -> str:
        """The message Backend.js gives for an answer without a JSON body, as google.script.run
        hands a thrown Error to the page (its text starting "Error: ")."""
        text = self.js("return window.__server.describeBackendError_(arguments[0], undefined,"
                       " arguments[1], arguments[2]);", status, BACKEND, path)
        return "Error: " + text

    def crm_error(self, status: int, error: dict[str, str], form: dict[str, str],
                  retry_after: int | None = None) -> str:
        """The message Backend.js gives for a CRM error the backend answered a look-up of
        `form`'s record with (`error`: the body's error object)."""
        text = self.js("var target = window.__server.crmTarget_(arguments[3]);"
                       "return window.__server.describeBackendError_(arguments[0],"
                       " { error: arguments[1] }, arguments[2], '/v1/briefs/resolve',"
                       " arguments[4], target);", status, error, BACKEND, form, retry_after)
        return "Error: " + text

    def answer_look_up(self, resolved: dict[str, Any]) -> None:
        """Answer lookUpOpportunity as Server.js does: the backend's resolved brief turned
        into the preview by the real previewOfResolved_."""
        call = self.pending("lookUpOpportunity")
        self.js("var target = window.__server.crmTarget_(arguments[1]);"
                "window.__stub.succeed(arguments[0],"
                " window.__server.previewOfResolved_(arguments[2], target));",
                call["index"], call["args"][0], resolved)

    def preview(self) -> dict[str, str]:
        """The looked-up brief as shown: each term and its text, in the order shown."""
        pairs = self.js("return Array.from(document.querySelectorAll('#preview-fields dt'))"
                        ".map(function (dt) { return [dt.textContent,"
                        " dt.nextElementSibling.innerText]; });")
        return {term: text for term, text in pairs}

    def run_timers(self) -> int:
        return self.js("return window.__clock.run();")

    def held_timers(self) -> list[int]:
        return self.js("return window.__clock.held();")

    def click(self, css: str) -> None:
        ActionChains(self.driver).click(self.el(css)).perform()

    def shown(self, css: str) -> bool:
        return self.el(css).is_displayed()

    def progress(self) -> list[tuple[str, str, str]]:
        """(label, badge, error) per section line, as displayed."""
        rows = []
        for item in self.all("#progress-list li"):
            badge = item.find_element(By.CSS_SELECTOR, ".state").text
            errors = item.find_elements(By.CSS_SELECTOR, ".section-error")
            error = errors[0].text if errors else ""
            label = self.js("return arguments[0].childNodes[1].textContent;", item)
            rows.append((label, badge, error))
        return rows

    def form_fields_disabled(self) -> set[bool]:
        return {bool(f.get_property("disabled"))
                for f in self.all("#job-form input, #job-form textarea, #job-form select")}


@pytest.fixture
def open_sidebar(browser, tmp_path) -> Callable[..., Sidebar]:
    def open_(mode: str = "fill", **boot: Any) -> Sidebar:
        boot = {"mode": mode, "sections": sections_js(), "sectionsWarning": "",
                "backendUrl": BACKEND, "lastForm": None, "selectedSection": "", **boot}
        page = expand("Sidebar", {"bootJson": json_for_html(boot)})
        # Apps Script's client API exists before any of the page's own scripts run.
        page = page.replace("<head>", "<head>\n<script>" + STUB + server_code() + "</script>", 1)
        path = tmp_path / f"sidebar-{mode}.html"
        path.write_text(page, encoding="utf-8")
        browser.get(path.as_uri())
        return Sidebar(browser)

    return open_


def job(state: str, sections: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    """A job as GET /v1/jobs/{id} answers it."""
    rows = []
    for name, s_state in sections:
        row: dict[str, Any] = {"section": name, "state": s_state, "route": "local",
                               "model": "smollm2", "seconds": None, "error": None}
        if s_state == "done":
            row["seconds"] = 11.6
            row["fit"] = {"lines_used": 4, "lines_available": 6, "items_dropped": 0,
                          "overflows": False}
        rows.append(row)
    return {"id": "job_1", "state": state, "presentation_id": "deck-1", "warnings": [],
            "error": None, "sections": rows, **extra}


def start_filling(sidebar: Sidebar, client: str = "Harbor Logistics") -> None:
    sidebar.el("#client").send_keys(client)
    sidebar.click("#start")


# --- the tests ----------------------------------------------------------------------------

def test_the_section_checkboxes_are_those_of_sections_yaml(open_sidebar):
    sidebar = open_sidebar()
    labels = sidebar.all("#section-checks label")
    shown = [(lab.find_element(By.TAG_NAME, "input").get_attribute("value"), lab.text)
             for lab in labels]
    assert shown == [(s["name"], s["label"]) for s in sections_yaml()]
    for lab in labels:
        box = lab.find_element(By.TAG_NAME, "input")
        assert lab.is_displayed() and box.is_selected() and box.get_attribute("type") == "checkbox"
    assert not sidebar.shown("#section-pick"), "the one-section picker is for regenerating"
    assert sidebar.el("#start").text == "Fill this deck" and sidebar.el("#start").is_enabled()
    assert not sidebar.shown("#progress") and not sidebar.shown("#error")
    assert not sidebar.shown("#backend-missing")


def test_no_crm_option_when_none_is_configured(open_sidebar):
    """With no CRM connected (GET /v1/crms lists none configured, or the backend is older),
    the sidebar offers the typed brief only, as before."""
    sidebar = open_sidebar(lastForm={"client": "Acme", "source": "crm", "crm": "salesforce",
                                     "opportunityId": "006Qx00000AbCdE"}, crms=[], crm="")
    assert not sidebar.shown("#source-pick") and not sidebar.shown("#crm-fields")
    assert all(not e.is_displayed() for e in sidebar.all(
        "#opportunity-id, input[type=radio], [name=opportunityId], #look-up"))
    assert "opportunity id" not in sidebar.el("body").text.lower()
    assert "CRM" not in sidebar.el("body").text
    assert sidebar.shown("#brief-fields")
    assert sidebar.el("#client").get_property("value") == "Acme"
    start_filling(sidebar, client="")
    form = sidebar.pending("startJob")["args"][0]
    assert form["source"] == "typed" and "opportunityId" not in form and "crm" not in form
    assert sidebar.calls("lookUpOpportunity") == []


def test_fill_shows_each_sections_progress_then_the_final_state(open_sidebar):
    sidebar = open_sidebar()
    names = [s["name"] for s in sections_js()]
    label = {s["name"]: s["label"] for s in sections_yaml()}
    sidebar.click("#section-checks label:nth-child(4)")  # untick the fourth section
    picked = names[:3] + names[4:]
    start_filling(sidebar)

    form = sidebar.pending("startJob")["args"][0]
    assert form["client"] == "Harbor Logistics" and form["mode"] == "fill"
    assert form["sections"] == picked and form["keepEdits"] is True
    assert sidebar.el("#progress-message").text == "Starting…"
    assert not sidebar.el("#start").is_enabled()
    assert sidebar.form_fields_disabled() == {True}

    sidebar.succeed("startJob", {"id": "job_1", "state": "queued"})
    assert sidebar.el("#progress-message").text == "Waiting for the deck generator to start…"
    assert sidebar.shown("#cancel") and sidebar.el("#cancel").is_enabled()
    assert sidebar.held_timers() == [2000], "the sidebar polls every 2 s"
    assert sidebar.calls("pollJob") == []

    sidebar.run_timers()
    assert sidebar.pending("pollJob")["args"] == ["job_1"]
    # behind a batch: where the job stands, from the service's own estimate
    sidebar.answer_with_job("pollJob", job("queued", [(n, "queued") for n in picked],
                                           queue={"lane": "interactive", "ahead": 4,
                                                  "eta_seconds": 37.2}))
    assert sidebar.el("#progress-message").text == "Queued behind 4 decks, about 37 s…"
    sidebar.run_timers()
    states = ["done", "running"] + ["queued"] * (len(picked) - 2)
    sidebar.answer_with_job("pollJob", job("running", list(zip(picked, states, strict=True))))
    assert sidebar.el("#progress-message").text == f"Writing sections: 1 of {len(picked)} done…"
    assert sidebar.progress() == [
        (label[picked[0]], "Done (12 s) · 4/6 lines", ""),
        (label[picked[1]], "Writing…", ""),
    ] + [(label[n], "Waiting", "") for n in picked[2:]]
    assert not sidebar.el("#start").is_enabled(), "Fill stays off while the job runs"

    sidebar.run_timers()
    sidebar.answer_with_job("pollJob", job("done", [(n, "done") for n in picked]))
    assert sidebar.el("#progress-message").text == (
        f"Done: {len(picked)} sections written into this deck.")
    assert [row[1] for row in sidebar.progress()] == ["Done (12 s) · 4/6 lines"] * len(picked)
    assert sidebar.el("#start").is_enabled() and sidebar.form_fields_disabled() == {False}
    assert not sidebar.shown("#cancel") and not sidebar.shown("#error")
    assert sidebar.held_timers() == [], "no polling after the job has finished"
    assert len(sidebar.calls("pollJob")) == 3  # queued, running, done


def test_a_failed_section_shows_why_beside_it(open_sidebar):
    sidebar = open_sidebar()
    names = [s["name"] for s in sections_js()]
    label = {s["name"]: s["label"] for s in sections_yaml()}
    start_filling(sidebar)
    sidebar.succeed("startJob", {"id": "job_1", "state": "queued"})
    sidebar.run_timers()
    reason = (f"No box is marked for {label[names[3]]}: select one and use "
              "Deck generator › Mark selected box as section….")
    finished = job("done", [(n, "failed" if n == names[3] else "done") for n in names],
                   warnings=["Slide 3: the title box was left as it was (edited by hand)."])
    finished["sections"][3]["error"] = {"code": "no_box", "message": reason}
    sidebar.answer_with_job("pollJob", finished)

    total = len(names)
    assert sidebar.el("#progress-message").text == (
        f"Finished with problems: {total - 1} of {total} sections written, 1 failed (see below).")
    rows = sidebar.progress()
    assert rows[3] == (label[names[3]], "Failed", reason)
    assert sidebar.el("#progress-list li:nth-child(4) .section-error").is_displayed()
    assert all(row[2] == "" for i, row in enumerate(rows) if i != 3)
    assert sidebar.shown("#warnings")
    assert sidebar.el("#warnings").text == (
        "Slide 3: the title box was left as it was (edited by hand).")
    assert not sidebar.shown("#error"), "one failed section is not an error of the whole job"
    assert sidebar.el("#start").is_enabled()


def test_a_service_error_shows_a_readable_message(open_sidebar):
    sidebar = open_sidebar()
    start_filling(sidebar)
    sidebar.fail("startJob", sidebar.backend_error(503, "/v1/jobs"))
    assert sidebar.shown("#error")
    assert sidebar.el("#error").text == "Deck generator is busy, try again in a minute."
    assert sidebar.el("#error").get_attribute("role") == "alert"
    assert not sidebar.shown("#progress")
    assert sidebar.el("#start").is_enabled() and sidebar.form_fields_disabled() == {False}
    assert sidebar.el("#client").get_property("value") == "Harbor Logistics", "typing is kept"

    # A form the server refuses (here: no client) is explained in the same place, and a new
    # attempt clears the old message.
    sidebar.el("#client").clear()
    sidebar.click("#start")
    assert not sidebar.shown("#error")
    refused = sidebar.js("return window.__server.buildJobBody_(arguments[0], 'deck-1').errors;",
                         sidebar.pending("startJob")["args"][0])
    sidebar.fail("startJob", "Error: " + "\n".join(refused))
    assert sidebar.el("#error").text == "Client: enter the client’s name."


def test_losing_the_backend_mid_job_says_so_and_stops_polling(open_sidebar):
    sidebar = open_sidebar()
    start_filling(sidebar)
    sidebar.succeed("startJob", {"id": "job_1", "state": "queued"})
    unreachable = sidebar.backend_error(502, "/v1/jobs/job_1")
    for attempt in range(1, 4):
        sidebar.run_timers()
        sidebar.fail("pollJob", unreachable)
        assert sidebar.el("#progress-message").text.startswith("Still checking… (Deck generator")
        assert sidebar.held_timers() == [2000 * (attempt + 1)], "it backs off"
        assert not sidebar.el("#start").is_enabled()
    sidebar.run_timers()
    sidebar.fail("pollJob", unreachable)
    assert sidebar.el("#error").text == (
        "Lost track of the job: " + unreachable.removeprefix("Error: ")
        + " Sections already written stay in the deck.")
    assert sidebar.held_timers() == []
    assert sidebar.el("#start").is_enabled() and not sidebar.shown("#cancel")


def test_nothing_can_be_clicked_twice(open_sidebar):
    sidebar = open_sidebar()
    sidebar.el("#client").send_keys("Harbor Logistics")
    ActionChains(sidebar.driver).double_click(sidebar.el("#start")).perform()
    sidebar.click("#start")
    assert len(sidebar.calls("startJob")) == 1, "a double click starts one job"
    assert sidebar.el("#start").get_attribute("aria-busy") == "true"

    sidebar.succeed("startJob", {"id": "job_1", "state": "queued"})
    sidebar.click("#start")
    assert len(sidebar.calls("startJob")) == 1, "Fill is off while a job runs"

    ActionChains(sidebar.driver).double_click(sidebar.el("#cancel")).perform()
    assert len(sidebar.calls("cancelJob")) == 1, "a double click on Stop stops once"
    assert sidebar.pending("cancelJob")["args"] == ["job_1"]
    assert not sidebar.el("#cancel").is_enabled()
    assert sidebar.el("#progress-message").text == "Stopping…"

    cancelled = job("cancelled", [(s["name"], "done" if i == 0 else "skipped")
                                  for i, s in enumerate(sections_js())])
    sidebar.answer_with_job("cancelJob", cancelled)
    assert sidebar.el("#progress-message").text == (
        "Cancelled. What was already written (1 section) stays in the deck.")
    assert not sidebar.shown("#cancel") and sidebar.el("#start").is_enabled()
    assert sidebar.held_timers() == [], "no poll after a stop"


def test_regenerate_offers_one_section_from_sections_yaml(open_sidebar):
    sidebar = open_sidebar("regenerate", selectedSection="data")
    options = sidebar.all("#section option")
    assert [(o.get_attribute("value"), o.text) for o in options] == [
        (s["name"], s["label"]) for s in sections_yaml()]
    assert sidebar.el("#section").get_property("value") == "data"
    assert not sidebar.shown("#sections-pick") and not sidebar.shown("#keep-edits-block")
    assert sidebar.el("#start").text == "Regenerate section"
    start_filling(sidebar)
    form = sidebar.pending("startJob")["args"][0]
    assert form["mode"] == "regenerate" and form["section"] == "data" and "sections" not in form


# --- the brief from a CRM -----------------------------------------------------------------

# As Menu.js hands them to the page (Crm.js normalizeCrms_: the configured CRMs of GET /v1/crms).
CRMS = [{"name": "salesforce", "label": "Salesforce",
         "hint": "The id in the opportunity’s address, or the whole address."},
        {"name": "hubspot", "label": "HubSpot",
         "hint": "The deal’s record id, or the whole address."}]
SF_ID = "006Qx00000AbCdEFGH"
SF_URL = f"https://acme.lightning.force.com/lightning/r/Opportunity/{SF_ID}/view"


def resolved(**extra: Any) -> dict[str, Any]:
    """What POST /v1/briefs/resolve answers for SF_ID."""
    return {"crm": "salesforce", "opportunity_id": SF_ID, "name": "Fleet telematics",
            "stage": "Proposal", "url": SF_URL,
            "brief": {"client": "Harbor Logistics", "opportunity": "Telematics for 400 trucks",
                      "notes": "Dana wants the pilot live before the Q3 renewal. " * 12,
                      "contacts": [{"name": "Dana Smith", "role": "CFO"}, {"name": "Lee Park"}],
                      "metrics": {"Fleet": "400 trucks"}},
            "missing": ["industry"], **extra}


def open_crm(open_sidebar: Callable[..., Sidebar], **boot: Any) -> Sidebar:
    sidebar = open_sidebar(**{"crms": CRMS, "crm": "salesforce", **boot})
    assert sidebar.shown("#source-pick")
    return sidebar


def test_look_up_shows_the_brief_and_fill_sends_crm_and_opportunity_id(open_sidebar):
    sidebar = open_crm(open_sidebar)
    assert sidebar.el("#source-pick input[value=typed]").is_selected(), "typed stays the default"
    assert not sidebar.shown("#crm-fields")
    sidebar.click("#source-pick input[value=crm]")
    assert not sidebar.shown("#brief-fields") and sidebar.shown("#crm-fields")
    assert [o.text for o in sidebar.all("#crm option")] == ["Salesforce", "HubSpot"]
    assert sidebar.el("#opportunity-id-hint").text == CRMS[0]["hint"]
    assert not sidebar.shown("#crm-preview")

    sidebar.el("#opportunity-id").send_keys(SF_URL)  # the rep pastes the record's address
    sidebar.click("#look-up")
    assert sidebar.pending("lookUpOpportunity")["args"] == [
        {"crm": "salesforce", "opportunityId": SF_URL}]
    assert sidebar.el("#look-up").text == "Looking up…"
    assert not sidebar.el("#look-up").is_enabled() and not sidebar.el("#start").is_enabled()
    sidebar.click("#look-up")
    assert len(sidebar.calls("lookUpOpportunity")) == 1, "one look-up at a time"

    sidebar.answer_look_up(resolved())
    assert sidebar.shown("#crm-preview")
    assert sidebar.el("#look-up").text == "Look up" and sidebar.el("#start").is_enabled()
    assert sidebar.el("#opportunity-id").get_property("value") == SF_ID, "the address became its id"
    assert sidebar.el("#preview-title").text == "Fleet telematics"
    link = sidebar.el("#preview-link")
    assert link.text == "Open in Salesforce" and link.get_attribute("href") == SF_URL
    shown = sidebar.preview()
    assert list(shown) == ["Client", "Opportunity", "Stage", "Metrics", "Contacts", "Notes"]
    assert shown["Client"] == "Harbor Logistics" and shown["Stage"] == "Proposal"
    assert shown["Opportunity"] == "Telematics for 400 trucks"
    assert [li.text for li in sidebar.all("#preview-fields ul li")] == ["Dana Smith — CFO",
                                                                         "Lee Park"]
    assert shown["Notes"].startswith("Dana wants the pilot live before the Q3 renewal. Dana")
    assert shown["Notes"].endswith("…") and len(shown["Notes"]) <= 201, "the start of the notes"
    assert sidebar.el("#preview-missing").text == (
        "Salesforce had nothing for Industry; the deck is written without it.")
    assert sidebar.all("#crm-preview input, #crm-preview textarea") == [], "read-only"

    sidebar.click("#start")
    form = sidebar.pending("startJob")["args"][0]
    assert (form["source"], form["crm"], form["opportunityId"]) == ("crm", "salesforce", SF_ID)
    body = sidebar.js("return window.__server.buildJobBody_(arguments[0], 'deck-1');", form)
    assert body["errors"] == []
    assert body["body"]["crm"] == "salesforce" and body["body"]["opportunity_id"] == SF_ID
    assert "brief" not in body["body"]
    assert sidebar.form_fields_disabled() == {True} and not sidebar.el("#look-up").is_enabled()

    # The job's progress names the opportunity; once done, whether its link is on the record.
    names = [s["name"] for s in sections_js()]
    opportunity = {"crm": "salesforce", "id": SF_ID, "url": SF_URL, "name": "Fleet telematics"}
    sidebar.succeed("startJob", {"id": "job_1", "state": "queued"})
    sidebar.run_timers()
    sidebar.answer_with_job("pollJob", job("running", [(n, "running") for n in names],
                                           opportunity=opportunity, writeback=None))
    assert sidebar.el("#progress-opportunity-text").text == (
        "From the Salesforce opportunity “Fleet telematics”.")
    assert sidebar.el("#progress-opportunity-link").get_attribute("href") == SF_URL
    assert not sidebar.shown("#progress-writeback")
    sidebar.run_timers()
    sidebar.answer_with_job("pollJob", job("done", [(n, "done") for n in names],
                                           opportunity=opportunity,
                                           writeback={"state": "pending", "attempts": 0}))
    assert sidebar.el("#progress-message").text == (
        f"Done: {len(names)} sections written into this deck.")
    assert sidebar.el("#progress-writeback").text == "Saving the link to Salesforce…"
    assert sidebar.el("#start").is_enabled(), "the form is free while the link is being saved"
    assert sidebar.held_timers() == [5000], "the write-back is watched, slower"
    sidebar.run_timers()
    sidebar.answer_with_job("pollJob", job("done", [(n, "done") for n in names],
                                           opportunity=opportunity,
                                           writeback={"state": "done", "attempts": 1}))
    assert sidebar.el("#progress-writeback").text == "Link saved on the Salesforce opportunity."
    assert sidebar.held_timers() == [], "nothing left to watch"
    assert len(sidebar.calls("pollJob")) == 3


def test_fill_looks_up_first_and_a_changed_id_needs_a_new_look_up(open_sidebar):
    sidebar = open_crm(open_sidebar, crm="hubspot", lastForm={
        "client": "Typed Co", "source": "crm", "crm": "hubspot", "opportunityId": "77"})
    assert sidebar.el("#source-pick input[value=crm]").is_selected(), "as last sent from this deck"
    assert sidebar.el("#crm").get_property("value") == "hubspot"
    assert sidebar.el("#opportunity-id").get_property("value") == "77"
    assert sidebar.el("#opportunity-id-hint").text == CRMS[1]["hint"]

    sidebar.click("#start")  # Fill before any look-up: the brief is shown first, nothing starts
    assert sidebar.calls("startJob") == []
    assert sidebar.pending("lookUpOpportunity")["args"] == [
        {"crm": "hubspot", "opportunityId": "77"}]
    sidebar.answer_look_up(resolved(crm="hubspot", opportunity_id="77", name="Fleet deal",
                                    url="javascript:alert(1)", missing=[]))
    assert sidebar.el("#preview-title").text == "Fleet deal"
    assert not sidebar.shown("#preview-link"), "only https links are shown"
    assert not sidebar.shown("#preview-missing")

    sidebar.el("#opportunity-id").send_keys("8")  # now 778: the preview is of another record
    assert not sidebar.shown("#crm-preview")
    sidebar.el("#opportunity-id").send_keys("\n")  # Enter looks the new id up
    assert sidebar.calls("startJob") == []
    assert sidebar.pending("lookUpOpportunity")["args"] == [
        {"crm": "hubspot", "opportunityId": "778"}]


def test_a_look_up_error_is_shown_in_place(open_sidebar):
    sidebar = open_crm(open_sidebar)
    sidebar.click("#source-pick input[value=crm]")
    sidebar.el("#opportunity-id").send_keys(SF_ID)
    form = {"crm": "salesforce", "opportunityId": SF_ID}
    sidebar.click("#look-up")
    sidebar.fail("lookUpOpportunity", sidebar.crm_error(
        403, {"code": "crm_forbidden", "message": "the Salesforce user may not read Account"},
        form))
    box = sidebar.el("#lookup-error")
    assert box.is_displayed() and box.get_attribute("role") == "alert"
    assert box.text == ("Deck generator may not read this opportunity in Salesforce: the "
                        "Salesforce user may not read Account. Ask your Salesforce admin to give "
                        "deck generator’s Salesforce user access to it.")
    assert not sidebar.shown("#error") and not sidebar.shown("#crm-preview")
    assert sidebar.el("#look-up").is_enabled() and sidebar.el("#start").is_enabled()
    assert sidebar.el("#opportunity-id").get_property("value") == SF_ID, "typing is kept"

    sidebar.click("#look-up")
    assert not sidebar.shown("#lookup-error"), "a new attempt clears the old message"
    sidebar.fail("lookUpOpportunity", sidebar.crm_error(
        503, {"code": "crm_unavailable", "message": "Salesforce answered 503"}, form,
        retry_after=30))
    assert sidebar.el("#lookup-error").text == (
        "Salesforce isn’t answering right now. Try again in 30 seconds.")

    sidebar.click("#look-up")
    sidebar.answer_look_up(resolved())
    assert not sidebar.shown("#lookup-error") and sidebar.shown("#crm-preview")


def test_a_failed_write_back_says_why(open_sidebar):
    sidebar = open_crm(open_sidebar, crm="hubspot")
    sidebar.click("#source-pick input[value=crm]")
    sidebar.el("#opportunity-id").send_keys("77")
    sidebar.click("#look-up")
    sidebar.answer_look_up(resolved(crm="hubspot", opportunity_id="77", url=None))
    sidebar.click("#start")
    sidebar.succeed("startJob", {"id": "job_1", "state": "queued"})
    sidebar.run_timers()
    names = [s["name"] for s in sections_js()]
    opportunity = {"crm": "hubspot", "id": "77", "url": None, "name": None}
    sidebar.answer_with_job("pollJob", job(
        "done", [(n, "done") for n in names], opportunity=opportunity,
        writeback={"state": "failed", "attempts": 5,
                   "error": {"code": "crm_forbidden",
                             "message": "the HubSpot app may not create notes"}}))
    assert sidebar.el("#progress-opportunity-text").text == "From the HubSpot deal “77”."
    assert not sidebar.shown("#progress-opportunity-link")
    assert sidebar.el("#progress-writeback").text == (
        "Saving the link to HubSpot failed: the HubSpot app may not create notes. The deck "
        "itself is filled; add its link to the deal by hand.")
    assert "writeback-failed" in sidebar.el("#progress-writeback").get_attribute("class")
    assert sidebar.held_timers() == [] and sidebar.el("#start").is_enabled()


def test_the_typed_brief_is_unchanged_when_a_crm_is_offered(open_sidebar):
    sidebar = open_crm(open_sidebar)
    sidebar.click("#source-pick input[value=crm]")
    sidebar.click("#source-pick input[value=typed]")  # there and back
    assert sidebar.shown("#brief-fields") and not sidebar.shown("#crm-fields")
    sidebar.el("#contacts").send_keys("Dana Smith — CFO")
    start_filling(sidebar)
    assert sidebar.calls("lookUpOpportunity") == []
    form = sidebar.pending("startJob")["args"][0]
    assert form["source"] == "typed" and form["client"] == "Harbor Logistics"
    built = sidebar.js("return window.__server.buildJobBody_(arguments[0], 'deck-1');", form)
    assert built["errors"] == []
    assert "crm" not in built["body"] and "opportunity_id" not in built["body"]
    assert built["body"]["brief"]["client"] == "Harbor Logistics"
    assert built["body"]["brief"]["contacts"] == [{"name": "Dana Smith", "role": "CFO"}]
    sidebar.succeed("startJob", {"id": "job_1", "state": "queued"})
    sidebar.run_timers()
    sidebar.answer_with_job("pollJob", job("done", [(s["name"], "done") for s in sections_js()]))
    assert not sidebar.shown("#progress-opportunity") and not sidebar.shown("#progress-writeback")
    assert sidebar.held_timers() == []
