"""The sidebar as a sales rep meets it, in a real browser.

appsscript/Sidebar.html is expanded the way HtmlService would (its `<?!= include('…') ?>`
scriptlets replaced by the named files as they are, `<?!= bootJson ?>` by the boot object the
menu hands it), opened in headless Debian Chromium driven by Selenium, and checked through
what is on screen. `google.script.run` is replaced by a stub: each server call is recorded
and the test answers it, with the strings the real server code would send (the add-on's own
.js files, loaded into the page inside a closure, summarise jobs and word errors). The page's
long timers (the 2 s poll) wait for the test to run them, so no test sleeps.

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
            " describeBackendError_: describeBackendError_ };\n})();")
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
        return {f.get_property("disabled")
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


def test_there_is_no_opportunity_id_field(open_sidebar):
    """The backend cannot resolve a CRM opportunity yet (it answers 422), so the sidebar
    offers a typed brief only."""
    sidebar = open_sidebar(lastForm={"client": "Acme", "opportunityId": "006Qx00000AbCdE"})
    assert sidebar.all("#opportunity-id, input[type=radio], [name=opportunityId]") == []
    assert "opportunity id" not in sidebar.el("body").text.lower()
    assert "CRM" not in sidebar.el("body").text
    assert sidebar.el("#client").get_property("value") == "Acme"
    start_filling(sidebar, client="")
    assert "opportunityId" not in sidebar.pending("startJob")["args"][0]


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
