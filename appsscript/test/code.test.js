'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { load, plain, makeElement, makeSelection } = require('./fakes');

const BACKEND = 'https://deckgen.example.com';
const UNREACHABLE = /^Deck generator could not be reached at https:\/\/deckgen\.example\.com\./;

function briefForm(extra) {
  return Object.assign(
    {
      mode: 'fill',
      client: '  Acme   Corp ',
      industry: 'Logistics',
      opportunity: 'Warehouse analytics',
      notes: 'Met at the summit.\nBudget in Q3.',
      contacts: 'Dana Smith — CFO\n\nLee Park – Head of Ops\nSam Roe - CTO\nAlex Kim',
      metrics: 'ARR: $2.4M\nSites: 14\nChurn:  3%  \nURL: https://acme.example',
      sections: ['current_state', 'data'],
      keepEdits: true,
    },
    extra || {},
  );
}

/** name -> label, as Sections.js (generated from prompts/sections.yaml) has them. */
function labelsOf(env) {
  return Object.fromEntries(plain(env.gs.SECTIONS).map((s) => [s.name, s.label]));
}

function lastCall(env) {
  const call = env.urlFetch.calls[env.urlFetch.calls.length - 1];
  return Object.assign({}, call, { body: call.options.payload === undefined ? undefined : JSON.parse(call.options.payload) });
}

// ---------------------------------------------------------------------------
// Menu
// ---------------------------------------------------------------------------

test('onOpen adds the Deck generator menu with its four items', () => {
  const env = load();
  env.gs.onOpen({ authMode: 'NONE' });
  assert.equal(env.ui.menus.length, 1);
  const menu = env.ui.menus[0];
  assert.equal(menu.title, 'Deck generator');
  assert.equal(menu.added, true);
  const items = menu.items.filter((i) => !i.separator);
  assert.deepEqual(items.map((i) => i.caption), [
    'Fill this deck…',
    'Regenerate a section…',
    'Mark selected box as section…',
    'Settings…',
  ]);
  for (const item of items) {
    assert.equal(typeof env.gs[item.functionName], 'function', item.functionName + ' is defined');
    assert.ok(!item.functionName.endsWith('_'), item.functionName + ' must be public for the menu to call it');
  }
  assert.equal(env.urlFetch.calls.length, 0, 'onOpen must not call the backend (AuthMode.NONE)');
});

test('onInstall builds the same menu', () => {
  const env = load();
  env.gs.onInstall({ authMode: 'FULL' });
  assert.equal(env.ui.menus.length, 1);
  assert.equal(env.ui.menus[0].title, 'Deck generator');
});

// ---------------------------------------------------------------------------
// startJob
// ---------------------------------------------------------------------------

test('startJob sends the brief to POST /v1/jobs with both tokens', () => {
  const env = load({ presentationId: 'deck-42' });
  env.urlFetch.respond({ status: 202, body: { id: 'job_1', state: 'queued' } });
  const job = env.gs.startJob(briefForm());
  assert.deepEqual(plain(job), { id: 'job_1', state: 'queued' });

  assert.equal(env.urlFetch.calls.length, 1);
  const call = lastCall(env);
  assert.equal(call.url, BACKEND + '/v1/jobs');
  assert.equal(call.options.method, 'post');
  assert.equal(call.options.contentType, 'application/json');
  assert.equal(call.options.muteHttpExceptions, true);
  assert.equal(call.options.followRedirects, false);
  assert.equal(call.options.headers.Authorization, 'Bearer id-token-abc');
  assert.equal(call.options.headers['X-Goog-User-Token'], 'user-token-xyz');
  assert.deepEqual(call.body, {
    presentation_id: 'deck-42',
    brief: {
      client: 'Acme Corp',
      industry: 'Logistics',
      opportunity: 'Warehouse analytics',
      notes: 'Met at the summit.\nBudget in Q3.',
      contacts: [
        { name: 'Dana Smith', role: 'CFO' },
        { name: 'Lee Park', role: 'Head of Ops' },
        { name: 'Sam Roe', role: 'CTO' },
        { name: 'Alex Kim', role: '' },
      ],
      metrics: { ARR: '$2.4M', Sites: '14', Churn: '3%', URL: 'https://acme.example' },
    },
    sections: ['current_state', 'data'],
    keep_edits: true,
  });
});

test('startJob remembers the brief for this deck so the sidebar can prefill it', () => {
  const env = load();
  env.urlFetch.respond({ status: 202, body: { id: 'job_1', state: 'queued' } });
  env.gs.startJob(briefForm());
  const saved = JSON.parse(env.docProps.store.DECKGEN_LAST_FORM);
  assert.equal(saved.client, briefForm().client);
  assert.equal(saved.metrics, briefForm().metrics);
  assert.equal('opportunityId' in saved, false);

  // A later form that leaves a field out does not forget it.
  env.urlFetch.respond({ status: 202, body: { id: 'job_2', state: 'queued' } });
  env.gs.startJob({ mode: 'fill', client: 'Acme Corp', sections: ['data'] });
  const again = JSON.parse(env.docProps.store.DECKGEN_LAST_FORM);
  assert.equal(again.client, 'Acme Corp');
  assert.equal(again.metrics, briefForm().metrics);
});

test('startJob does not remember a brief the backend refused', () => {
  const env = load();
  env.urlFetch.respond({ status: 422, body: { error: { code: 'invalid_brief', message: 'too long', field: 'brief.notes' } } });
  assert.throws(() => env.gs.startJob(briefForm()), /Please check Notes: too long\./);
  assert.equal(env.docProps.store.DECKGEN_LAST_FORM, undefined);
});

test('startJob sends a typed brief, never an opportunity id, unless the form says the brief is from a CRM', () => {
  const env = load();
  env.urlFetch.respond({ status: 202, body: { id: 'job_2', state: 'queued' } });
  env.gs.startJob(briefForm({ source: 'typed', crm: 'salesforce', opportunityId: '006Qx00000AbCdE' }));
  const { body } = lastCall(env);
  assert.equal('opportunity_id' in body, false);
  assert.equal('crm' in body, false);
  assert.equal(body.brief.client, 'Acme Corp');
  // An id alone is no brief: the rep is asked for the client, and nothing is sent.
  assert.throws(() => env.gs.startJob({ mode: 'fill', opportunityId: 'opp-1', sections: ['skills'] }), /^Error: Client: enter the client’s name\.$/);
  assert.equal(env.urlFetch.calls.length, 1);
});

test('startJob in regenerate mode sends that one section and keep_edits false', () => {
  const env = load();
  env.urlFetch.respond({ status: 202, body: { id: 'job_3', state: 'queued' } });
  // The sidebar's checkboxes and keep-edits are ignored in this mode.
  env.gs.startJob(briefForm({ mode: 'regenerate', section: 'stakeholders', keepEdits: true }));
  const { body } = lastCall(env);
  assert.deepEqual(body.sections, ['stakeholders']);
  assert.equal(body.keep_edits, false);
});

test('startJob accepts a single checkbox value as a string and "on" for keep edits', () => {
  const env = load();
  env.urlFetch.respond({ status: 202, body: { id: 'job_4', state: 'queued' } });
  env.gs.startJob(briefForm({ sections: 'future_state', keepEdits: 'on' }));
  const { body } = lastCall(env);
  assert.deepEqual(body.sections, ['future_state']);
  assert.equal(body.keep_edits, true);
});

test('startJob refuses a form without a client, before calling the backend', () => {
  const env = load();
  assert.throws(() => env.gs.startJob(briefForm({ client: '   ' })), /^Error: Client: enter the client’s name\.$/);
  assert.equal(env.urlFetch.calls.length, 0);
});

test('startJob names the bad metrics line', () => {
  const env = load();
  assert.throws(
    () => env.gs.startJob(briefForm({ metrics: 'ARR: $2.4M\nfourteen sites\n: 3%' })),
    (err) => {
      assert.match(err.message, /Metrics, line 2 \(“fourteen sites”\): write it as “name: value”/);
      assert.match(err.message, /Metrics, line 3 /);
      return true;
    },
  );
  assert.equal(env.urlFetch.calls.length, 0);
});

test('startJob lists every problem at once', () => {
  const env = load();
  assert.throws(
    () => env.gs.startJob(briefForm({ client: '', contacts: '— CFO', metrics: 'ARR: 1\nARR: 2', sections: [] })),
    (err) => {
      const lines = err.message.split('\n');
      assert.equal(lines.length, 4, err.message);
      assert.match(lines[0], /^Client:/);
      assert.match(lines[1], /^Contacts, line 1 .*name before the role/);
      assert.match(lines[2], /^Metrics, line 2: “ARR” is already given/);
      assert.match(lines[3], /^Sections: tick at least one section/);
      return true;
    },
  );
});

test('startJob in regenerate mode needs a section', () => {
  const env = load();
  assert.throws(() => env.gs.startJob(briefForm({ mode: 'regenerate', section: '' })), /Section: pick the section to regenerate\./);
  assert.throws(() => env.gs.startJob(briefForm({ mode: 'regenerate', section: '../etc' })), /Section: pick the section to regenerate\./);
});

test('startJob without a backend URL says where to set it', () => {
  const env = load({ backendUrl: null });
  assert.throws(() => env.gs.startJob(briefForm()), /no backend URL yet\. Open Deck generator › Settings…/);
  assert.equal(env.urlFetch.calls.length, 0);
});

test('startJob without an identity token (openid scope missing) reads as an identity problem', () => {
  const env = load({ identityToken: '' });
  assert.throws(() => env.gs.startJob(briefForm()), { message: 'Deck generator could not confirm who you are. Reload the deck and try again.' });
  assert.equal(env.urlFetch.calls.length, 0);
});

// ---------------------------------------------------------------------------
// Errors in plain words
// ---------------------------------------------------------------------------

const errorCases = [
  { name: '401', status: 401, body: { error: { code: 'unauthenticated', message: 'bad token audience' } }, path: 'start',
    expect: /^Deck generator could not confirm who you are\. Reload the deck and try again\.$/ },
  { name: '401 from a load balancer (HTML)', status: 401, body: '<html><body>Unauthorized</body></html>', path: 'start',
    expect: /^Deck generator could not confirm who you are\./ },
  { name: '403 on a job', status: 403, body: { error: { code: 'forbidden', message: 'not your job' } }, path: 'poll',
    expect: /^That deck generator job belongs to someone else, so you can’t see it\./ },
  { name: '403 on start', status: 403, body: { error: { code: 'forbidden', message: 'domain not allowed' } }, path: 'start',
    expect: /^Deck generator won’t accept requests from your account\. Ask your admin/ },
  { name: '404 job not found', status: 404, body: { error: { code: 'not_found', message: 'no such job' } }, path: 'poll',
    expect: /^Deck generator no longer knows that job \(it may have expired\)\. Start it again\.$/ },
  { name: '404 HTML (wrong URL)', status: 404, body: '<!doctype html><h1>Not Found</h1>', path: 'start', expect: UNREACHABLE },
  { name: '422 with a field', status: 422, body: { error: { code: 'invalid_brief', message: 'must not be empty', field: 'brief.client' } }, path: 'start',
    expect: /^Please check Client: must not be empty\.$/ },
  { name: '422 on a metric', status: 422, body: { error: { code: 'invalid_brief', message: 'value too long', field: 'brief.metrics.ARR' } }, path: 'start',
    expect: /^Please check Metrics \(“ARR”\): value too long\.$/ },
  { name: '422 on a contact', status: 422, body: { error: { code: 'invalid_brief', message: 'name is required', field: 'brief.contacts[1].name' } }, path: 'start',
    expect: /^Please check Contacts \(item 2\): name is required\.$/ },
  { name: '422 without a field', status: 422, body: { error: { code: 'invalid_brief', message: 'Brief is empty.' } }, path: 'start',
    expect: /^Please check the brief: Brief is empty\.$/ },
  { name: '429', status: 429, body: { error: { code: 'rate_limited', message: 'slow down' } }, path: 'start',
    expect: /^Deck generator is busy, try again in a minute\.$/ },
  { name: '503 with an HTML body', status: 503, body: '<html>Service Unavailable</html>', path: 'poll',
    expect: /^Deck generator is busy, try again in a minute\.$/ },
  { name: '500', status: 500, body: { error: { code: 'internal', message: 'Traceback…' } }, path: 'start',
    expect: /^Deck generator ran into a problem on its side \(error 500\)\. Try again in a minute/ },
  { name: '502 HTML from a proxy', status: 502, body: '<html>Bad Gateway</html>', path: 'start', expect: UNREACHABLE },
  { name: '200 that is not JSON (a login page)', status: 200, body: '<html>Sign in</html>', path: 'poll', expect: UNREACHABLE },
  { name: 'empty 202', status: 202, body: '', path: 'start', expect: UNREACHABLE },
  { name: '302 redirect', status: 302, body: '', path: 'start', expect: /sent us somewhere else\. Check the backend URL/ },
];

for (const c of errorCases) {
  test('backend error in plain words: ' + c.name, () => {
    const env = load();
    env.urlFetch.respond({ status: c.status, body: c.body });
    const call = c.path === 'poll' ? () => env.gs.pollJob('job_9') : () => env.gs.startJob(briefForm());
    assert.throws(call, (err) => {
      assert.match(err.message, c.expect);
      assert.doesNotMatch(err.message, /Traceback|undefined|null|\[object/);
      return true;
    });
  });
}

test('a network failure says the backend could not be reached, with its URL', () => {
  const env = load();
  env.urlFetch.respond({ throws: 'Address unavailable: https://deckgen.example.com/v1/jobs' });
  assert.throws(() => env.gs.startJob(briefForm()), (err) => {
    assert.match(err.message, UNREACHABLE);
    assert.match(err.message, /Check the backend URL in Deck generator › Settings…/);
    return true;
  });
  assert.ok(env.logs.some((l) => l[0] === 'warn' && /Address unavailable/.test(l[1])), 'the raw failure is logged for support');
});

test('a 202 without a job id is treated as not our backend', () => {
  const env = load();
  env.urlFetch.respond({ status: 202, body: { ok: true } });
  assert.throws(() => env.gs.startJob(briefForm()), { message: UNREACHABLE });
});

// ---------------------------------------------------------------------------
// pollJob / cancelJob
// ---------------------------------------------------------------------------

const runningJob = {
  id: 'job_7',
  state: 'running',
  presentation_id: 'pres_123',
  url: 'https://docs.google.com/presentation/d/pres_123/edit',
  warnings: [],
  error: null,
  sections: [
    { section: 'current_state', state: 'done', route: 'local', model: 'm', seconds: 12.4, error: null },
    { section: 'future_state', state: 'done', route: 'local', model: 'm', seconds: 9, error: null },
    { section: 'data', state: 'running', route: 'remote', model: 'm', seconds: null, error: null },
    { section: 'skills', state: 'failed', route: 'remote', model: 'm', seconds: 3, error: { code: 'no_box', message: 'No box marked for Skills.' } },
    { section: 'stakeholders', state: 'queued', route: null, model: null, seconds: null, error: null },
  ],
};

test('pollJob GETs the job with both tokens and summarises it', () => {
  const env = load();
  env.urlFetch.respond({ status: 200, body: runningJob });
  const job = plain(env.gs.pollJob('job_7'));
  const call = lastCall(env);
  assert.equal(call.url, BACKEND + '/v1/jobs/job_7');
  assert.equal(call.options.method, 'get');
  assert.equal(call.options.payload, undefined);
  assert.equal(call.options.headers.Authorization, 'Bearer id-token-abc');
  assert.equal(call.options.headers['X-Goog-User-Token'], 'user-token-xyz');

  assert.equal(job.id, 'job_7');
  assert.equal(job.state, 'running');
  assert.equal(job.summary.finished, false);
  assert.equal(job.summary.message, 'Writing sections: 2 of 5 done, 1 failed…');
  // Labels come from Sections.js, generated from prompts/sections.yaml.
  const label = labelsOf(env);
  assert.deepEqual(job.summary.sections.map((s) => [s.label, s.state, s.text, s.error]), [
    [label.current_state, 'done', 'Done (12 s)', ''],
    [label.future_state, 'done', 'Done (9 s)', ''],
    [label.data, 'running', 'Writing…', ''],
    [label.skills, 'failed', 'Failed', 'No box marked for Skills.'],
    [label.stakeholders, 'queued', 'Waiting', ''],
  ]);
});

test('pollJob reports a finished job so the sidebar stops polling', () => {
  const env = load();
  const done = Object.assign({}, runningJob, {
    state: 'done',
    warnings: ['Slide 4 had no box for Data; added one.'],
    sections: runningJob.sections.map((s) => Object.assign({}, s, { state: s.section === 'skills' ? 'failed' : 'done' })),
  });
  env.urlFetch.respond({ status: 200, body: done });
  const job = plain(env.gs.pollJob('job_7'));
  assert.equal(job.summary.finished, true);
  assert.equal(job.summary.message, 'Finished with problems: 4 of 5 sections written, 1 failed (see below).');
  assert.deepEqual(job.summary.warnings, ['Slide 4 had no box for Data; added one.']);
});

test('pollJob refuses an id that is not a job id, without calling the backend', () => {
  const env = load();
  assert.throws(() => env.gs.pollJob('../sections'), /not a deck generator job id/);
  assert.throws(() => env.gs.pollJob(''), /not a deck generator job id/);
  assert.equal(env.urlFetch.calls.length, 0);
});

test('cancelJob POSTs to /v1/jobs/{id}/cancel', () => {
  const env = load();
  env.urlFetch.respond({ status: 200, body: { id: 'job_7', state: 'cancelled', sections: [{ section: 'data', state: 'done' }] } });
  const job = plain(env.gs.cancelJob('job_7'));
  const call = lastCall(env);
  assert.equal(call.url, BACKEND + '/v1/jobs/job_7/cancel');
  assert.equal(call.options.method, 'post');
  assert.equal(job.summary.finished, true);
  assert.equal(job.summary.message, 'Cancelled. What was already written (1 section) stays in the deck.');
});

test('summarizeJob_ words every job state', () => {
  const env = load();
  const s = (job) => plain(env.gs.summarizeJob_(job));
  assert.deepEqual([s({ id: 'j', state: 'queued' }).message, s({ id: 'j', state: 'queued' }).finished], ['Waiting for the deck generator to start…', false]);
  assert.equal(s({ id: 'j', state: 'done', sections: [{ section: 'data', state: 'done' }] }).message, 'Done: 1 section written into this deck.');
  assert.equal(
    s({ id: 'j', state: 'done', sections: [{ section: 'data', state: 'done' }, { section: 'skills', state: 'skipped' }] }).message,
    'Done: 1 section written into this deck. 1 skipped.',
  );
  const failed = s({ id: 'j', state: 'failed', error: { code: 'deck_locked', message: 'The deck could not be edited' }, sections: [] });
  assert.equal(failed.finished, true);
  assert.equal(failed.message, 'The deck could not be filled: The deck could not be edited.');
  assert.equal(s({ id: 'j', state: 'cancelled' }).message, 'Cancelled.');
  assert.equal(s({ id: 'j', state: 'running', sections: [{ section: 'custom_thing', state: 'queued' }] }).sections[0].label, 'Custom thing');
});

test('summarizeJob_ says where a queued job stands and what to check when it is done', () => {
  const env = load();
  const s = (job) => plain(env.gs.summarizeJob_(job));
  assert.equal(s({ id: 'j', state: 'queued', queue: { lane: 'interactive', ahead: 3, eta_seconds: 41.6 } }).message,
    'Queued behind 3 decks, about 42 s…');
  assert.equal(s({ id: 'j', state: 'queued', queue: { lane: 'batch', ahead: 1, eta_seconds: null } }).message,
    'Queued behind 1 deck…');
  assert.equal(s({ id: 'j', state: 'queued', queue: { lane: 'interactive', ahead: 0, eta_seconds: null } }).message,
    'Waiting for the deck generator to start…');
  const done = s({ id: 'j', state: 'done', status: 'incomplete', summary: 'data FLAGGED: unsupported "37%"',
    sections: [{ section: 'data', state: 'done', flagged: true }] });
  assert.equal(done.message, 'Done: 1 section written into this deck. Check: data FLAGGED: unsupported "37%".');
  assert.match(done.sections[0].text, /claims to check/);
});

test('summarizeJob_ shows how each section fits its box', () => {
  const env = load();
  const s = (fit) => plain(env.gs.summarizeJob_({ id: 'j', state: 'done', sections: [{ section: 'data', state: 'done', seconds: 12.4, fit }] })).sections[0].text;
  assert.equal(s({ lines_used: 7, lines_available: 9, items_dropped: 0, overflows: false }), 'Done (12 s) · 7/9 lines');
  assert.equal(s({ lines_used: 9, lines_available: 9, items_dropped: 2, overflows: false }), 'Done (12 s) · 9/9 lines, 2 cut');
  assert.equal(s({ lines_used: 11, lines_available: 9, items_dropped: 4, overflows: true }), 'Done (12 s) · 11/9 lines, overflows');
  assert.equal(s(null), 'Done (12 s)');
  assert.equal(s({ limits: {} }), 'Done (12 s)');
});

// ---------------------------------------------------------------------------
// Mark selected box as section
// ---------------------------------------------------------------------------

test('markSelectedAsSection sets the one selected shape\'s alt text to deckgen:<section>', () => {
  const shape = makeElement('SHAPE', '');
  const env = load({ selection: makeSelection([shape]) });
  const result = plain(env.gs.markSelectedAsSection('current_state'));
  assert.deepEqual(shape.setCalls, ['deckgen:current_state']);
  assert.equal(result.message, 'Marked the selected box as “Current state”.');
});

test('markSelectedAsSection says what it replaced', () => {
  const marked = makeElement('SHAPE', 'deckgen:data');
  const env = load({ selection: makeSelection([marked]) });
  assert.equal(env.gs.markSelectedAsSection('skills').message, 'Marked the selected box as “' + labelsOf(env).skills + '”. It was marked as “' + labelsOf(env).data + '” before.');
  const described = makeElement('SHAPE', 'Chart of quarterly revenue');
  env.select(makeSelection([described]));
  assert.match(env.gs.markSelectedAsSection('skills').message, /old alt text \(“Chart of quarterly revenue”\) was replaced/);
});

test('markSelectedAsSection with nothing selected asks for a text box', () => {
  const env = load({ selection: makeSelection(null) });
  assert.throws(() => env.gs.markSelectedAsSection('data'), /^Error: Select one text box first, then choose the section\.$/);
  env.select(makeSelection([]));
  assert.throws(() => env.gs.markSelectedAsSection('data'), /^Error: Select one text box first/);
  env.select(null);
  assert.throws(() => env.gs.markSelectedAsSection('data'), /^Error: Select one text box first/);
});

test('markSelectedAsSection with two elements selected changes neither', () => {
  const a = makeElement('SHAPE');
  const b = makeElement('SHAPE');
  const env = load({ selection: makeSelection([a, b]) });
  assert.throws(() => env.gs.markSelectedAsSection('data'), /^Error: Select one text box first: 2 things are selected now\.$/);
  assert.deepEqual([a.setCalls, b.setCalls], [[], []]);
});

test('markSelectedAsSection refuses an image', () => {
  const image = makeElement('IMAGE');
  const env = load({ selection: makeSelection([image]) });
  assert.throws(() => env.gs.markSelectedAsSection('data'), /the selected item is an image, not a text box/);
});

test('markSelectedAsSection needs a section name', () => {
  const shape = makeElement('SHAPE');
  const env = load({ selection: makeSelection([shape]) });
  assert.throws(() => env.gs.markSelectedAsSection(''), /Pick a section first\./);
  assert.throws(() => env.gs.markSelectedAsSection('Data; drop'), /Pick a section first\./);
  assert.deepEqual(shape.setCalls, []);
});

test('the Mark dialog lists the backend\'s sections and preselects the box\'s current mark', () => {
  const env = load({ selection: makeSelection([makeElement('SHAPE', 'deckgen:skills')]) });
  env.urlFetch.respond({ status: 200, body: { sections: [{ name: 'current_state', label: 'Where they are' }, { name: 'skills', label: 'Skills' }, { name: 'BAD NAME', label: 'x' }] } });
  env.gs.showMarkDialog();
  assert.equal(env.urlFetch.calls[0].url, BACKEND + '/v1/sections');
  assert.equal(env.templates[0].fileName, 'Dialog');
  const boot = JSON.parse(env.templates[0].bootJson);
  assert.equal(boot.mode, 'mark');
  assert.deepEqual(boot.sections, [{ name: 'current_state', label: 'Where they are' }, { name: 'skills', label: 'Skills' }]);
  assert.equal(boot.selectedSection, 'skills');
  assert.equal(env.ui.dialogs.length, 1);
  assert.equal(env.ui.dialogs[0].modal, false);
});

test('the Mark dialog falls back to the generated section list when the backend is unreachable', () => {
  const env = load();
  env.urlFetch.respond({ throws: 'DNS error' });
  env.gs.showMarkDialog();
  const boot = JSON.parse(env.templates[0].bootJson);
  assert.deepEqual(boot.sections, plain(env.gs.SECTIONS));
  assert.deepEqual(boot.sections.map((s) => s.name), ['current_state', 'future_state', 'data', 'skills', 'stakeholders']);
  assert.match(boot.sectionsWarning, UNREACHABLE);
});

test('listSections without a backend URL uses the generated section list and does not fetch', () => {
  const env = load({ backendUrl: null });
  const result = plain(env.gs.listSections());
  assert.equal(result.fromBackend, false);
  assert.deepEqual(result.sections, plain(env.gs.SECTIONS));
  assert.equal(env.urlFetch.calls.length, 0);
});

// ---------------------------------------------------------------------------
// Sidebar
// ---------------------------------------------------------------------------

test('Fill opens the sidebar template with the sections and the remembered brief', () => {
  const env = load({ documentProperties: { DECKGEN_LAST_FORM: JSON.stringify({ client: 'Acme </script><script>alert(1)</script>' }) } });
  env.urlFetch.respond({ status: 200, body: { sections: [{ name: 'data', label: 'Data' }] } });
  env.gs.showFillSidebar();
  const template = env.templates[0];
  assert.equal(template.fileName, 'Sidebar');
  assert.equal(template.evaluated, true);
  assert.ok(!/<\/script/i.test(template.bootJson), 'boot JSON cannot close its script element');
  const boot = JSON.parse(template.bootJson);
  assert.equal(boot.mode, 'fill');
  assert.deepEqual(boot.sections, [{ name: 'data', label: 'Data' }]);
  assert.equal(boot.lastForm.client, 'Acme </script><script>alert(1)</script>');
  assert.equal(boot.backendUrl, BACKEND);
  assert.equal(env.ui.sidebars.length, 1);
  assert.equal(env.ui.sidebars[0].title, 'Fill this deck');
});

test('Regenerate opens the sidebar in regenerate mode, preselecting the selected box\'s section', () => {
  const env = load({ selection: makeSelection([makeElement('SHAPE', 'deckgen:future_state')]) });
  env.urlFetch.respond({ status: 503, body: '' });
  env.gs.showRegenerateSidebar();
  const boot = JSON.parse(env.templates[0].bootJson);
  assert.equal(boot.mode, 'regenerate');
  assert.equal(boot.selectedSection, 'future_state');
  assert.deepEqual(boot.sections, plain(env.gs.SECTIONS), 'the generated sections while the backend is busy');
  assert.equal(env.ui.sidebars[0].title, 'Regenerate a section');
});

test('include() returns an HTML file\'s content', () => {
  const env = load();
  assert.match(env.gs.include('SidebarJs'), /^<script>/);
});

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

test('validateBackendUrl_ accepts https and local http only', () => {
  const env = load();
  const v = (u) => plain(env.gs.validateBackendUrl_(u));
  assert.deepEqual(v('https://deckgen.example.com'), { url: 'https://deckgen.example.com', error: '' });
  assert.deepEqual(v('  HTTPS://Deckgen.Example.com/api/// '), { url: 'https://deckgen.example.com/api', error: '' });
  assert.deepEqual(v('https://deckgen-abc-uc.a.run.app:443/'), { url: 'https://deckgen-abc-uc.a.run.app:443', error: '' });
  assert.deepEqual(v('http://localhost:8000'), { url: 'http://localhost:8000', error: '' });
  assert.deepEqual(v('http://127.0.0.1:8000/'), { url: 'http://127.0.0.1:8000', error: '' });

  const rejected = {
    '': /Enter the backend URL/,
    'http://deckgen.example.com': /must start with https:\/\/ \(plain http:\/\/ is only allowed for localhost and 127\.0\.0\.1/,
    'http://localhost.evil.example': /must start with https:\/\//,
    'http://127.0.0.1.nip.io': /must start with https:\/\//,
    'ftp://deckgen.example.com': /must start with https:\/\//,
    'javascript:alert(1)': /is not a web address/,
    'deckgen.example.com': /is not a web address/,
    'https://user:pw@deckgen.example.com': /must not contain a user name or password/,
    'https://deckgen.example.com/?x=1': /Leave out the part after “\?” or “#”/,
    'https://deck gen.example.com': /is not a web address/,
    'https://': /does not name a server/,
    'https://deckgen.example.com:99999': /does not name a server/,
  };
  for (const [input, pattern] of Object.entries(rejected)) {
    const result = v(input);
    assert.equal(result.url, '', input);
    assert.match(result.error, pattern, input);
  }
});

test('saveSettings stores a valid URL for this user and checks the backend', () => {
  const env = load({ backendUrl: null });
  env.urlFetch.respond({ status: 200, body: { sections: [{ name: 'data', label: 'Data' }, { name: 'skills', label: 'Skills' }] } });
  const result = plain(env.gs.saveSettings({ backendUrl: 'https://deckgen.example.com/' }));
  assert.equal(env.userProps.store.DECKGEN_BACKEND_URL, 'https://deckgen.example.com');
  assert.deepEqual(result, { backendUrl: BACKEND, reachable: true, message: 'Saved. Deck generator answered and offers 2 sections.' });
  assert.equal(env.urlFetch.calls[0].url, BACKEND + '/v1/sections');
  assert.deepEqual(plain(env.gs.getSettings()), { backendUrl: BACKEND });
});

test('saveSettings keeps a valid URL even when the backend does not answer, and says so', () => {
  const env = load({ backendUrl: null });
  env.urlFetch.respond({ throws: 'timeout' });
  const result = plain(env.gs.saveSettings({ backendUrl: 'https://deckgen.example.com' }));
  assert.equal(result.reachable, false);
  assert.match(result.message, /^Saved, but: Deck generator could not be reached at https:\/\/deckgen\.example\.com\./);
  assert.equal(env.userProps.store.DECKGEN_BACKEND_URL, BACKEND);
});

test('saveSettings refuses a bad URL and keeps the old one', () => {
  const env = load({ backendUrl: 'https://old.example.com' });
  assert.throws(() => env.gs.saveSettings({ backendUrl: 'http://deckgen.example.com' }), /must start with https:\/\//);
  assert.equal(env.userProps.store.DECKGEN_BACKEND_URL, 'https://old.example.com');
  assert.equal(env.urlFetch.calls.length, 0);
});

test('Settings opens a modal dialog showing the saved URL', () => {
  const env = load();
  env.gs.showSettingsDialog();
  const boot = JSON.parse(env.templates[0].bootJson);
  assert.equal(boot.mode, 'settings');
  assert.equal(boot.backendUrl, BACKEND);
  assert.equal(env.ui.dialogs[0].modal, true);
  assert.equal(env.urlFetch.calls.length, 0);
});

// ---------------------------------------------------------------------------
// Parsers
// ---------------------------------------------------------------------------

test('parseContacts_ reads "Name — Role" lines with any common separator', () => {
  const env = load();
  const r = plain(env.gs.parseContacts_('Dana Smith — CFO\r\nLee Park–COO\nSam Roe - VP, Sales\nAna Lima, Buyer\nJo Wu | IT\nMary-Ann Lee\n\nSmith, Dana — Head of IT, EMEA'));
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.contacts, [
    { name: 'Dana Smith', role: 'CFO' },
    { name: 'Lee Park', role: 'COO' },
    { name: 'Sam Roe', role: 'VP, Sales' },
    { name: 'Ana Lima', role: 'Buyer' },
    { name: 'Jo Wu', role: 'IT' },
    { name: 'Mary-Ann Lee', role: '' },
    { name: 'Smith, Dana', role: 'Head of IT, EMEA' },
  ]);
  assert.deepEqual(plain(env.gs.parseContacts_(undefined)), { contacts: [], errors: [] });
});

test('parseMetrics_ splits on the first colon and skips blank lines', () => {
  const env = load();
  const r = plain(env.gs.parseMetrics_('\nARR: $2.4M\n  Renewal date : 2025-01-31 10:00 \n'));
  assert.deepEqual(r, { metrics: { ARR: '$2.4M', 'Renewal date': '2025-01-31 10:00' }, errors: [] });
  assert.equal(plain(env.gs.parseMetrics_('ARR:')).errors.length, 1);
  assert.equal(plain(env.gs.parseMetrics_('ARR 2.4M')).errors.length, 1);
});

// ---------------------------------------------------------------------------
// Setting up the backend's audience
// ---------------------------------------------------------------------------

test('logIdentityTokenAudience logs the token\'s aud claim, not the token', () => {
  const claims = { iss: 'https://accounts.google.com', aud: '1234-abc.apps.googleusercontent.com', email: 'rep@example.com', note: 'é' };
  const token = ['{"alg":"RS256"}', JSON.stringify(claims), 'sig'].map((p) => Buffer.from(p).toString('base64url')).join('.');
  const env = load({ identityToken: token });
  const info = plain(env.gs.logIdentityTokenAudience());
  assert.deepEqual(info, { aud: claims.aud, email: claims.email, iss: claims.iss });
  const logged = JSON.stringify(env.logs);
  assert.ok(logged.includes(claims.aud));
  assert.ok(!logged.includes(token.split('.')[1]), 'the token itself is not logged');
});

test('logIdentityTokenAudience explains a missing identity token', () => {
  const env = load({ identityToken: '' });
  assert.throws(() => env.gs.logIdentityTokenAudience(), /needs the "openid" scope/);
});
