'use strict';
// The CRM door of the sidebar's server side: which CRMs are offered (GET /v1/crms), the
// look-up of an opportunity (POST /v1/briefs/resolve) and its preview, a job started from a
// record (POST /v1/jobs with crm + opportunity_id), the job's opportunity and write-back
// lines, and every CRM error in words.
const test = require('node:test');
const assert = require('node:assert/strict');
const { load, plain } = require('./fakes');

const BACKEND = 'https://deckgen.example.com';
const SF_ID = '006Qx00000AbCdEFGH';
const SECTIONS_ANSWER = { status: 200, body: { sections: [{ name: 'data', label: 'Data' }] } };
const CRMS_ANSWER = {
  status: 200,
  body: { crms: [{ name: 'salesforce', label: 'Salesforce', configured: true }, { name: 'hubspot', label: 'HubSpot', configured: false }] },
};

/** What POST /v1/briefs/resolve answers for SF_ID. */
function resolved(extra) {
  return Object.assign(
    {
      crm: 'salesforce',
      opportunity_id: SF_ID,
      name: 'Fleet telematics',
      stage: 'Proposal',
      url: 'https://acme.lightning.force.com/lightning/r/Opportunity/' + SF_ID + '/view',
      brief: {
        client: 'Harbor Logistics',
        opportunity: 'Telematics for 400 trucks',
        notes: 'Call with Dana on 3 March. '.repeat(20),
        contacts: [{ name: 'Dana Smith', role: 'CFO' }, { name: 'Lee Park' }],
        metrics: { Fleet: '400 trucks', ARR: '$1.2M' },
        facts: ['Renewal in Q3'],
      },
      missing: ['industry'],
    },
    extra || {},
  );
}

function lastCall(env) {
  const call = env.urlFetch.calls[env.urlFetch.calls.length - 1];
  return Object.assign({}, call, { body: call.options.payload === undefined ? undefined : JSON.parse(call.options.payload) });
}

function crmForm(extra) {
  return Object.assign(
    {
      mode: 'fill', source: 'crm', crm: 'salesforce', opportunityId: SF_ID,
      client: 'Typed client (ignored)', contacts: '— not parsed', metrics: 'not a metric',
      sections: ['current_state', 'data'], keepEdits: true,
    },
    extra || {},
  );
}

// ---------------------------------------------------------------------------
// Which CRMs the sidebar offers
// ---------------------------------------------------------------------------

test('the sidebar offers the configured CRMs only, asked with GET /v1/crms', () => {
  const env = load();
  env.urlFetch.respond(SECTIONS_ANSWER, CRMS_ANSWER);
  env.gs.showFillSidebar();
  assert.deepEqual(env.urlFetch.calls.map((c) => [c.options.method, c.url]), [
    ['get', BACKEND + '/v1/sections'],
    ['get', BACKEND + '/v1/crms'],
  ]);
  const call = env.urlFetch.calls[1];
  assert.equal(call.options.payload, undefined);
  assert.equal(call.options.headers.Authorization, 'Bearer id-token-abc');
  assert.equal(call.options.headers['X-Goog-User-Token'], 'user-token-xyz');
  const boot = JSON.parse(env.templates[0].bootJson);
  assert.deepEqual(boot.crms.map((c) => [c.name, c.label]), [['salesforce', 'Salesforce']]);
  assert.match(boot.crms[0].hint, /Opportunity\/006…\/view/);
  assert.equal(boot.crm, 'salesforce');
});

test('no CRM option when none is configured', () => {
  const env = load();
  env.urlFetch.respond(SECTIONS_ANSWER, {
    status: 200,
    body: { crms: [{ name: 'salesforce', label: 'Salesforce', configured: false }, { name: 'hubspot', label: 'HubSpot', configured: false }] },
  });
  env.gs.showFillSidebar();
  const boot = JSON.parse(env.templates[0].bootJson);
  assert.deepEqual(boot.crms, []);
  assert.equal(boot.crm, '');
});

test('a backend without GET /v1/crms (404) means no CRM option, and the sidebar still opens', () => {
  const env = load();
  env.urlFetch.respond(SECTIONS_ANSWER, { status: 404, body: { error: { code: 'not_found', message: 'Not Found' } } });
  env.gs.showRegenerateSidebar();
  const boot = JSON.parse(env.templates[0].bootJson);
  assert.deepEqual(boot.crms, []);
  assert.deepEqual(boot.sections, [{ name: 'data', label: 'Data' }]);
  assert.equal(env.ui.sidebars.length, 1);
  assert.ok(env.logs.some((l) => l[0] === 'warn' && /could not list CRMs/.test(l[1])));
});

test('an unreachable backend is not asked a second time for its CRMs', () => {
  const env = load();
  env.urlFetch.respond({ throws: 'DNS error' });
  env.gs.showFillSidebar();
  assert.equal(env.urlFetch.calls.length, 1);
  assert.deepEqual(JSON.parse(env.templates[0].bootJson).crms, []);
});

test('the CRM preselected is this deck\'s last, else this user\'s last, else the first configured', () => {
  const both = { status: 200, body: { crms: [{ name: 'salesforce', label: 'Salesforce', configured: true }, { name: 'hubspot', label: 'HubSpot', configured: true }] } };
  const open = (docForm, userCrm) => {
    const env = load({ documentProperties: docForm ? { DECKGEN_LAST_FORM: JSON.stringify(docForm) } : {} });
    if (userCrm) env.userProps.setProperty('DECKGEN_LAST_CRM', userCrm);
    env.urlFetch.respond(SECTIONS_ANSWER, both);
    env.gs.showFillSidebar();
    return JSON.parse(env.templates[0].bootJson).crm;
  };
  assert.equal(open(null, null), 'salesforce');
  assert.equal(open(null, 'hubspot'), 'hubspot');
  assert.equal(open({ crm: 'salesforce' }, 'hubspot'), 'salesforce');
  assert.equal(open({ crm: 'dynamics' }, 'pipedrive'), 'salesforce', 'a CRM no longer configured is not preselected');
});

// ---------------------------------------------------------------------------
// Looking an opportunity up
// ---------------------------------------------------------------------------

test('lookUpOpportunity POSTs crm and opportunity_id to /v1/briefs/resolve and returns the preview', () => {
  const env = load();
  env.urlFetch.respond({ status: 200, body: resolved() });
  const preview = plain(env.gs.lookUpOpportunity({ crm: 'salesforce', opportunityId: '  ' + SF_ID + ' ' }));

  assert.equal(env.urlFetch.calls.length, 1);
  const call = lastCall(env);
  assert.equal(call.url, BACKEND + '/v1/briefs/resolve');
  assert.equal(call.options.method, 'post');
  assert.equal(call.options.contentType, 'application/json');
  assert.equal(call.options.followRedirects, false);
  assert.equal(call.options.headers.Authorization, 'Bearer id-token-abc');
  assert.equal(call.options.headers['X-Goog-User-Token'], 'user-token-xyz');
  assert.deepEqual(call.body, { crm: 'salesforce', opportunity_id: SF_ID });

  assert.equal(preview.crm, 'salesforce');
  assert.equal(preview.opportunityId, SF_ID);
  assert.equal(preview.title, 'Fleet telematics');
  assert.equal(preview.url, resolved().url);
  assert.equal(preview.linkText, 'Open in Salesforce');
  assert.deepEqual(preview.fields, [
    { label: 'Client', text: 'Harbor Logistics' },
    { label: 'Opportunity', text: 'Telematics for 400 trucks' },
    { label: 'Stage', text: 'Proposal' },
    { label: 'Metrics', text: 'Fleet, ARR' },
  ]);
  assert.deepEqual(preview.contacts, ['Dana Smith — CFO', 'Lee Park']);
  assert.ok(preview.notes.startsWith('Call with Dana on 3 March. Call with'), preview.notes);
  assert.ok(preview.notes.endsWith('…') && preview.notes.length <= 201, preview.notes);
  assert.equal(preview.missing, 'Salesforce had nothing for Industry; the deck is written without it.');
  assert.equal(env.userProps.store.DECKGEN_LAST_CRM, 'salesforce', 'the CRM choice is remembered for this user');
  assert.equal(env.docProps.store.DECKGEN_LAST_FORM, undefined, 'a look-up starts nothing and remembers no brief');
});

test('lookUpOpportunity takes the address of the record\'s page', () => {
  const env = load();
  const cases = [
    ['salesforce', 'https://acme.lightning.force.com/lightning/r/Opportunity/' + SF_ID + '/view', SF_ID],
    ['salesforce', 'https://na1.salesforce.com/006Qx00000AbCdE?srPos=0', '006Qx00000AbCdE'],
    ['hubspot', 'https://app.hubspot.com/contacts/4711/record/0-3/18734290112/', '18734290112'],
    ['hubspot', 'https://app.hubspot.com/contacts/4711/deal/987654', '987654'],
  ];
  for (const [crm, typed, id] of cases) {
    env.urlFetch.respond({ status: 200, body: resolved({ crm, opportunity_id: id }) });
    const preview = plain(env.gs.lookUpOpportunity({ crm, opportunityId: typed }));
    assert.deepEqual(lastCall(env).body, { crm, opportunity_id: id }, typed);
    assert.equal(preview.opportunityId, id);
  }
});

test('lookUpOpportunity refuses what is not a record id, before calling the backend', () => {
  const env = load();
  const refused = [
    [{ crm: 'salesforce', opportunityId: '' }, /^Error: Opportunity id: enter the Salesforce opportunity’s id\.$/],
    [{ crm: 'salesforce', opportunityId: '006 Qx' }, /^Error: Opportunity id: “006 Qx” is not a Salesforce opportunity id \(it is like 006Qx00000AbCdE\)\.$/],
    [{ crm: 'hubspot', opportunityId: 'deal-12' }, /^Error: Opportunity id: “deal-12” is not a HubSpot deal id \(it is a number, like 18734290112\)\.$/],
    [{ crm: 'hubspot', opportunityId: 'https://app.hubspot.com/contacts/4711/record/0-1/55' }, /that address is not a HubSpot deal’s page/],
    [{ crm: 'salesforce', opportunityId: 'https://acme.lightning.force.com/lightning/r/Account/001Qx00000AbCdE/view' }, /that address is not a Salesforce opportunity’s page/],
    [{ crm: '', opportunityId: SF_ID }, /^Error: CRM: pick the CRM the opportunity is in\.$/],
    [{ crm: '../x', opportunityId: SF_ID }, /^Error: CRM: pick/],
  ];
  for (const [form, pattern] of refused) {
    assert.throws(() => env.gs.lookUpOpportunity(form), pattern, JSON.stringify(form));
  }
  assert.equal(env.urlFetch.calls.length, 0);
  assert.equal(env.userProps.store.DECKGEN_LAST_CRM, undefined);
});

test('the preview leaves out what the record lacks, names it, and shows only https links', () => {
  const env = load();
  const many = Array.from({ length: 9 }, (_, i) => ({ name: 'Person ' + (i + 1), role: i ? '' : 'Buyer' }));
  const p = plain(env.gs.previewOfResolved_(
    resolved({ crm: 'hubspot', opportunity_id: '42', name: null, stage: null, url: 'javascript:alert(1)',
      brief: { client: 'Harbor', contacts: many, notes: 'Short note.' }, missing: ['industry', 'opportunity', 'metrics', 'brief.notes'] }),
    { crm: 'hubspot', opportunityId: '42' },
  ));
  assert.equal(p.title, 'HubSpot deal 42');
  assert.equal(p.url, '', 'a javascript: link is not shown');
  assert.deepEqual(p.fields, [{ label: 'Client', text: 'Harbor' }]);
  assert.deepEqual(p.contacts, ['Person 1 — Buyer', 'Person 2', 'Person 3', 'Person 4', 'Person 5', 'and 4 more']);
  assert.equal(p.notes, 'Short note.');
  assert.equal(p.missing, 'HubSpot had nothing for Industry, Opportunity, Metrics and Notes; the deck is written without them.');
  assert.equal(plain(env.gs.previewOfResolved_(resolved({ missing: [] }), { crm: 'salesforce', opportunityId: SF_ID })).missing, '');
});

test('a look-up answered with no brief is not our backend', () => {
  const env = load();
  env.urlFetch.respond({ status: 200, body: { ok: true } });
  assert.throws(() => env.gs.lookUpOpportunity({ crm: 'salesforce', opportunityId: SF_ID }), /^Error: Deck generator could not be reached at https:\/\/deckgen\.example\.com\./);
});

// ---------------------------------------------------------------------------
// A job from a CRM record
// ---------------------------------------------------------------------------

test('startJob from a CRM record sends crm and opportunity_id in place of a brief', () => {
  const env = load({ presentationId: 'deck-42' });
  env.urlFetch.respond({ status: 202, body: { id: 'job_1', state: 'queued' } });
  const job = plain(env.gs.startJob(crmForm()));
  assert.deepEqual(job, { id: 'job_1', state: 'queued' });
  const call = lastCall(env);
  assert.equal(call.url, BACKEND + '/v1/jobs');
  assert.equal(call.options.method, 'post');
  assert.equal(call.options.headers.Authorization, 'Bearer id-token-abc');
  assert.equal(call.options.headers['X-Goog-User-Token'], 'user-token-xyz');
  assert.deepEqual(call.body, {
    presentation_id: 'deck-42',
    crm: 'salesforce',
    opportunity_id: SF_ID,
    sections: ['current_state', 'data'],
    keep_edits: true,
  });
  // What the deck was filled from prefills the sidebar next time; the CRM, for this user.
  const saved = JSON.parse(env.docProps.store.DECKGEN_LAST_FORM);
  assert.deepEqual([saved.source, saved.crm, saved.opportunityId], ['crm', 'salesforce', SF_ID]);
  assert.equal(env.userProps.store.DECKGEN_LAST_CRM, 'salesforce');
});

test('startJob from a CRM record regenerates one section too', () => {
  const env = load();
  env.urlFetch.respond({ status: 202, body: { id: 'job_2', state: 'queued' } });
  env.gs.startJob(crmForm({ mode: 'regenerate', section: 'skills', crm: 'hubspot', opportunityId: 'https://app.hubspot.com/contacts/4711/deal/18734290112' }));
  const { body } = lastCall(env);
  assert.deepEqual(body, { presentation_id: 'pres_123', crm: 'hubspot', opportunity_id: '18734290112', sections: ['skills'], keep_edits: false });
});

test('startJob from a CRM record needs an id, and says what else is wrong at once', () => {
  const env = load();
  assert.throws(() => env.gs.startJob(crmForm({ opportunityId: ' ', sections: [] })), (err) => {
    assert.deepEqual(err.message.split('\n'), [
      'Opportunity id: enter the Salesforce opportunity’s id.',
      'Sections: tick at least one section to write.',
    ]);
    return true;
  });
  assert.equal(env.urlFetch.calls.length, 0);
});

// ---------------------------------------------------------------------------
// The CRM's errors in words, from the look-up and from starting a job
// ---------------------------------------------------------------------------

const crmErrors = [
  {
    name: '404 opportunity_not_found',
    answer: { status: 404, body: { error: { code: 'opportunity_not_found', message: 'no Opportunity ' + SF_ID } } },
    expect: 'Salesforce has no opportunity “' + SF_ID + '”. Check the id: it is in the address of the opportunity’s page.',
  },
  {
    name: '403 crm_forbidden',
    answer: { status: 403, body: { error: { code: 'crm_forbidden', message: 'the Salesforce user may not read Account' } } },
    expect: 'Deck generator may not read this opportunity in Salesforce: the Salesforce user may not read Account. Ask your Salesforce admin to give deck generator’s Salesforce user access to it.',
  },
  {
    name: '422 crm_not_configured',
    answer: { status: 422, body: { error: { code: 'crm_not_configured', message: 'salesforce is not configured' } } },
    expect: 'Deck generator is not connected to Salesforce yet. Ask your admin to connect it, or type the brief instead.',
  },
  {
    name: '422 crm_field_missing',
    answer: { status: 422, body: { error: { code: 'crm_field_missing', message: 'Opportunity.Account.Name is empty', field: 'client' } } },
    expect: 'Salesforce has nothing for Client on this opportunity: Opportunity.Account.Name is empty. Fill it in Salesforce and look the opportunity up again, or type the brief instead.',
  },
  {
    name: '503 crm_unavailable, Retry-After 30',
    answer: { status: 503, headers: { 'Retry-After': '30' }, body: { error: { code: 'crm_unavailable', message: 'Salesforce answered 503' } } },
    expect: 'Salesforce isn’t answering right now. Try again in 30 seconds.',
  },
  {
    name: '503 crm_unavailable, retry-after 300 (any case)',
    answer: { status: 503, headers: { 'retry-after': '300' }, body: { error: { code: 'crm_unavailable', message: 'rate limited' } } },
    expect: 'Salesforce isn’t answering right now. Try again in 5 minutes.',
  },
  {
    name: '503 crm_unavailable without Retry-After',
    answer: { status: 503, body: { error: { code: 'crm_unavailable', message: 'timeout' } } },
    expect: 'Salesforce isn’t answering right now. Try again in a minute.',
  },
];

for (const c of crmErrors) {
  test('CRM error in plain words on look-up: ' + c.name, () => {
    const env = load();
    env.urlFetch.respond(c.answer);
    assert.throws(() => env.gs.lookUpOpportunity({ crm: 'salesforce', opportunityId: SF_ID }), { message: c.expect });
    assert.equal(env.userProps.store.DECKGEN_LAST_CRM, undefined, 'a failed look-up is not remembered');
  });

  test('CRM error in plain words on Fill: ' + c.name, () => {
    const env = load();
    env.urlFetch.respond(c.answer);
    assert.throws(() => env.gs.startJob(crmForm()), { message: c.expect });
    assert.equal(env.docProps.store.DECKGEN_LAST_FORM, undefined);
  });
}

test('CRM errors name HubSpot and its deals', () => {
  const env = load();
  env.urlFetch.respond(
    { status: 404, body: { error: { code: 'opportunity_not_found', message: 'no deal 77' } } },
    { status: 503, headers: { 'Retry-After': new Date(Date.now() + 120000).toUTCString() }, body: { error: { code: 'crm_unavailable', message: 'HubSpot 429' } } },
  );
  assert.throws(() => env.gs.lookUpOpportunity({ crm: 'hubspot', opportunityId: '77' }), {
    message: 'HubSpot has no deal “77”. Check the id: it is in the address of the deal’s page.',
  });
  assert.throws(() => env.gs.lookUpOpportunity({ crm: 'hubspot', opportunityId: '77' }), (err) => {
    assert.match(err.message, /^HubSpot isn’t answering right now\. Try again in (2 minutes|(11[0-9]|120) seconds)\.$/);
    return true;
  });
});

test('a busy backend says when to try again when it says so (Retry-After)', () => {
  const env = load();
  env.urlFetch.respond({ status: 503, headers: { 'Retry-After': '20' }, body: { error: { code: 'store_unavailable', message: 'x' } } });
  assert.throws(() => env.gs.pollJob('job_1'), { message: 'Deck generator is busy, try again in 20 seconds.' });
});

// ---------------------------------------------------------------------------
// The job's opportunity and the write-back of its link
// ---------------------------------------------------------------------------

const opportunity = { crm: 'salesforce', id: SF_ID, url: resolved().url, name: 'Fleet telematics' };

test('pollJob shows the job\'s opportunity, and the write-back once the deck is done', () => {
  const env = load();
  const sections = [{ section: 'data', state: 'done' }];
  env.urlFetch.respond(
    { status: 200, body: { id: 'job_1', state: 'running', sections: [{ section: 'data', state: 'running' }], opportunity, writeback: null } },
    { status: 200, body: { id: 'job_1', state: 'done', sections, opportunity, writeback: { state: 'pending', attempts: 0 } } },
    { status: 200, body: { id: 'job_1', state: 'done', sections, opportunity, writeback: { state: 'pending', attempts: 2 } } },
    { status: 200, body: { id: 'job_1', state: 'done', sections, opportunity, writeback: { state: 'done', attempts: 3 } } },
  );
  const running = plain(env.gs.pollJob('job_1')).summary;
  assert.deepEqual(running.opportunity, {
    text: 'From the Salesforce opportunity “Fleet telematics”.',
    url: opportunity.url,
    linkText: 'Open in Salesforce',
  });
  assert.equal(running.writeback, null);
  assert.deepEqual(plain(env.gs.pollJob('job_1')).summary.writeback, { state: 'pending', text: 'Saving the link to Salesforce…' });
  assert.deepEqual(plain(env.gs.pollJob('job_1')).summary.writeback, { state: 'pending', text: 'Saving the link to Salesforce… (2 tries so far)' });
  const done = plain(env.gs.pollJob('job_1')).summary;
  assert.equal(done.finished, true);
  assert.equal(done.message, 'Done: 1 section written into this deck.');
  assert.deepEqual(done.writeback, { state: 'done', text: 'Link saved on the Salesforce opportunity.' });
});

test('a failed write-back says why, and that the deck itself is filled', () => {
  const env = load();
  const s = plain(env.gs.summarizeJob_({
    id: 'j', state: 'done', sections: [{ section: 'data', state: 'done' }],
    opportunity: { crm: 'hubspot', id: '77', url: null, name: null },
    writeback: { state: 'failed', attempts: 5, error: { code: 'crm_forbidden', message: 'the HubSpot app may not create notes' } },
  }));
  assert.deepEqual(s.opportunity, { text: 'From the HubSpot deal “77”.', url: '', linkText: 'Open in HubSpot' });
  assert.deepEqual(s.writeback, {
    state: 'failed',
    text: 'Saving the link to HubSpot failed: the HubSpot app may not create notes. The deck itself is filled; add its link to the deal by hand.',
  });
});

test('a job from a typed brief has no opportunity or write-back line', () => {
  const env = load();
  const s = plain(env.gs.summarizeJob_({ id: 'j', state: 'done', sections: [], opportunity: null, writeback: null }));
  assert.equal(s.opportunity, null);
  assert.equal(s.writeback, null);
  const old = plain(env.gs.summarizeJob_({ id: 'j', state: 'done', sections: [] }));
  assert.equal(old.opportunity, null, 'a backend that does not send the fields yet');
  assert.equal(old.writeback, null);
});
