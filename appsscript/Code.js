/**
 * deckgen — Google Slides side.
 *
 * Adds a "Deck generator" menu to the deck. The sidebar sends a brief (or a CRM
 * opportunity id) to the deckgen backend, which writes the sections into this
 * deck through the Slides REST API with the user's own OAuth token. The sidebar
 * polls the job every couple of seconds; no server call here ever waits for a
 * job to finish (Apps Script stops an execution after 6 minutes).
 *
 * Everything that has logic in it is a small pure function (names ending in
 * `_` are private: google.script.run cannot call them) so the Node tests in
 * test/ can check it without Google's servers.
 */

/** @typedef {{name: string, label: string}} SectionInfo */
/** @typedef {{code: string, message: string, field?: string}} BackendError */
/**
 * @typedef {{
 *   section: string, state: string, route?: string, model?: string,
 *   seconds?: number, error?: BackendError | null, fit?: SectionFit | null
 * }} JobSection
 */
/**
 * How a section's text fits its box (lines used of lines available), as the
 * backend measured it with the template's fonts.
 * @typedef {{
 *   lines_used?: number, lines_available?: number, items_dropped?: number,
 *   overflows?: boolean
 * }} SectionFit
 */
/**
 * @typedef {{
 *   id: string, state: string, sections?: JobSection[], presentation_id?: string,
 *   url?: string, warnings?: string[], error?: BackendError | null
 * }} Job
 */
/**
 * What the sidebar sends to startJob (a plain object built by SidebarJs.html).
 * @typedef {{
 *   mode?: string, client?: string, industry?: string, opportunity?: string,
 *   notes?: string, contacts?: string, metrics?: string, opportunityId?: string,
 *   sections?: string[] | string, section?: string, keepEdits?: boolean | string
 * }} JobForm
 */

/** The sections the backend knows about, used when it cannot be asked. */
var BUILTIN_SECTIONS = [
  { name: 'current_state', label: 'Current state' },
  { name: 'future_state', label: 'Future state' },
  { name: 'data', label: 'Data' },
  { name: 'skills', label: 'Skills' },
  { name: 'stakeholders', label: 'Stakeholders' },
];

/** User property holding the backend's base URL. */
var BACKEND_URL_PROPERTY = 'DECKGEN_BACKEND_URL';
/** Document property holding the last form sent from this deck (prefills the sidebar). */
var LAST_FORM_PROPERTY = 'DECKGEN_LAST_FORM';
/** Prefix of a shape's alt-text description that marks it as a section's box. */
var MARK_PREFIX = 'deckgen:';
/** Apps Script refuses property values above 9 kB. */
var MAX_PROPERTY_CHARS = 9000;

var MENU_TITLE = 'Deck generator';
var TITLE = 'Deck generator';

// ---------------------------------------------------------------------------
// Menu
// ---------------------------------------------------------------------------

/**
 * Runs when the deck opens (and, for an add-on, right after install). Only
 * builds the menu: in AuthMode.NONE nothing else is allowed here.
 * @param {GoogleAppsScript.Events.SlidesOnOpen | GoogleAppsScript.Events.AddonOnInstall} [e]
 */
function onOpen(e) {
  SlidesApp.getUi()
    .createMenu(MENU_TITLE)
    .addItem('Fill this deck…', 'showFillSidebar')
    .addItem('Regenerate a section…', 'showRegenerateSidebar')
    .addSeparator()
    .addItem('Mark selected box as section…', 'showMarkDialog')
    .addSeparator()
    .addItem('Settings…', 'showSettingsDialog')
    .addToUi();
}

/**
 * @param {GoogleAppsScript.Events.AddonOnInstall} [e]
 */
function onInstall(e) {
  onOpen(e);
}

// ---------------------------------------------------------------------------
// Sidebar and dialogs
// ---------------------------------------------------------------------------

function showFillSidebar() {
  openSidebar_('fill');
}

function showRegenerateSidebar() {
  openSidebar_('regenerate');
}

/**
 * @param {string} mode 'fill' or 'regenerate'
 */
function openSidebar_(mode) {
  var sections = listSections();
  var boot = {
    mode: mode,
    sections: sections.sections,
    sectionsWarning: sections.warning,
    backendUrl: getBackendUrl_() || '',
    lastForm: readLastForm_(),
    selectedSection: mode === 'regenerate' ? sectionOfSelection_() : '',
  };
  var template = HtmlService.createTemplateFromFile('Sidebar');
  template.bootJson = jsonForHtml_(boot);
  var html = template.evaluate().setTitle(mode === 'regenerate' ? 'Regenerate a section' : 'Fill this deck');
  SlidesApp.getUi().showSidebar(html);
}

function showMarkDialog() {
  openDialog_('mark', 'Mark selected box as section', 340, 380);
}

function showSettingsDialog() {
  openDialog_('settings', 'Deck generator settings', 420, 260);
}

/**
 * @param {string} mode 'mark' or 'settings'
 * @param {string} title
 * @param {number} width
 * @param {number} height
 */
function openDialog_(mode, title, width, height) {
  var boot = { mode: mode, sections: /** @type {SectionInfo[]} */ ([]), sectionsWarning: '', backendUrl: getBackendUrl_() || '', selectedSection: '' };
  if (mode === 'mark') {
    var sections = listSections();
    boot.sections = sections.sections;
    boot.sectionsWarning = sections.warning;
    boot.selectedSection = sectionOfSelection_();
  }
  var template = HtmlService.createTemplateFromFile('Dialog');
  template.bootJson = jsonForHtml_(boot);
  var html = template.evaluate().setWidth(width).setHeight(height);
  if (mode === 'mark') {
    // Modeless: the rep can select another box and mark it without reopening.
    SlidesApp.getUi().showModelessDialog(html, title);
  } else {
    SlidesApp.getUi().showModalDialog(html, title);
  }
}

/**
 * Used by the HTML templates: `<?!= include('SidebarJs') ?>`.
 * @param {string} name file name without `.html`
 * @returns {string}
 */
function include(name) {
  return HtmlService.createHtmlOutputFromFile(name).getContent();
}

/**
 * JSON that is safe inside a <script> element of a template (no `</script>`,
 * no `<!--`, and no line separators that old parsers choke on).
 * @param {any} value
 * @returns {string}
 */
function jsonForHtml_(value) {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

// ---------------------------------------------------------------------------
// Functions the sidebar and dialogs call (google.script.run)
// ---------------------------------------------------------------------------

/**
 * Validates the sidebar's form, asks the backend to start a job for this deck,
 * and returns the job as the backend answered it (state "queued").
 * @param {JobForm} form
 * @returns {Job}
 */
function startJob(form) {
  var presentationId = SlidesApp.getActivePresentation().getId();
  var built = buildJobBody_(form, presentationId);
  if (built.errors.length) {
    throw new Error(built.errors.join('\n'));
  }
  var job = /** @type {Job} */ (backendFetch_('post', '/v1/jobs', built.body));
  if (!job || typeof job.id !== 'string' || !job.id) {
    throw new Error(unreachableMessage_(getBackendUrl_() || ''));
  }
  saveLastForm_(form);
  return job;
}

/**
 * Asks the backend where a job is. Returns the job plus a `summary` that the
 * sidebar shows as it is (see summarizeJob_).
 * @param {string} jobId
 * @returns {Job & {summary: ReturnType<typeof summarizeJob_>}}
 */
function pollJob(jobId) {
  var job = /** @type {Job} */ (backendFetch_('get', jobPath_(jobId), undefined));
  return Object.assign({}, job, { summary: summarizeJob_(job) });
}

/**
 * Asks the backend to stop a job. Sections already written stay in the deck.
 * @param {string} jobId
 * @returns {Job & {summary: ReturnType<typeof summarizeJob_>}}
 */
function cancelJob(jobId) {
  var job = /** @type {Job} */ (backendFetch_('post', jobPath_(jobId) + '/cancel', undefined));
  if (!job || typeof job !== 'object' || !job.id) {
    job = { id: jobId, state: 'cancelled' };
  }
  return Object.assign({}, job, { summary: summarizeJob_(job) });
}

/**
 * The sections to offer: the backend's list, or the built-in five when there
 * is no backend URL yet or the backend cannot be reached.
 * @returns {{sections: SectionInfo[], fromBackend: boolean, warning: string}}
 */
function listSections() {
  if (!getBackendUrl_()) {
    return { sections: BUILTIN_SECTIONS.slice(), fromBackend: false, warning: 'No backend URL yet: set it in Deck generator › Settings….' };
  }
  try {
    var answer = backendFetch_('get', '/v1/sections', undefined);
    var sections = normalizeSections_(answer);
    if (sections.length) {
      return { sections: sections, fromBackend: true, warning: '' };
    }
    return { sections: BUILTIN_SECTIONS.slice(), fromBackend: false, warning: '' };
  } catch (err) {
    console.warn('deckgen: could not list sections: ' + errorText_(err));
    return { sections: BUILTIN_SECTIONS.slice(), fromBackend: false, warning: errorText_(err) };
  }
}

/**
 * Marks the one selected shape as the box a section is written into, by
 * setting its alt-text description to `deckgen:<section>`.
 * @param {string} section
 * @returns {{section: string, label: string, previous: string, message: string}}
 */
function markSelectedAsSection(section) {
  section = String(section || '').trim();
  if (!isSectionName_(section)) {
    throw new Error('Pick a section first.');
  }
  var selection = SlidesApp.getActivePresentation().getSelection();
  var picked = pickOneShape_(selection);
  if (picked.error) {
    throw new Error(picked.error);
  }
  var shape = /** @type {GoogleAppsScript.Slides.Shape} */ (picked.shape);
  var previous = shape.getDescription() || '';
  shape.setDescription(MARK_PREFIX + section);
  var label = sectionLabel_(section);
  var message = 'Marked the selected box as “' + label + '”.';
  if (previous && previous.indexOf(MARK_PREFIX) === 0 && previous !== MARK_PREFIX + section) {
    message += ' It was marked as “' + sectionLabel_(previous.slice(MARK_PREFIX.length)) + '” before.';
  } else if (previous && previous.indexOf(MARK_PREFIX) !== 0) {
    message += ' Its old alt text (“' + truncate_(previous, 60) + '”) was replaced.';
  }
  return { section: section, label: label, previous: previous, message: message };
}

/** @returns {{backendUrl: string}} */
function getSettings() {
  return { backendUrl: getBackendUrl_() || '' };
}

/**
 * Saves the backend URL for this user, then checks that the backend answers.
 * Throws (with the reason in plain words) when the URL is not acceptable.
 * @param {{backendUrl?: string}} form
 * @returns {{backendUrl: string, reachable: boolean, message: string}}
 */
function saveSettings(form) {
  var checked = validateBackendUrl_(form && form.backendUrl);
  if (checked.error) {
    throw new Error(checked.error);
  }
  PropertiesService.getUserProperties().setProperty(BACKEND_URL_PROPERTY, checked.url);
  try {
    var sections = normalizeSections_(backendFetch_('get', '/v1/sections', undefined));
    return {
      backendUrl: checked.url,
      reachable: true,
      message: 'Saved. Deck generator answered and offers ' + sections.length + ' section' + (sections.length === 1 ? '' : 's') + '.',
    };
  } catch (err) {
    return { backendUrl: checked.url, reachable: false, message: 'Saved, but: ' + errorText_(err) };
  }
}

/**
 * For the admin setting up the backend: run this once from the Apps Script
 * editor (Run › logIdentityTokenAudience) and read the log. `aud` is what the
 * backend's DECKGEN_GOOGLE_AUDIENCE must be set to. Logs claims only, never
 * the token itself.
 * @returns {{aud: string, email: string, iss: string}}
 */
function logIdentityTokenAudience() {
  var claims = decodeJwtPayload_(ScriptApp.getIdentityToken());
  var info = { aud: String(claims.aud || ''), email: String(claims.email || ''), iss: String(claims.iss || '') };
  Logger.log('Identity token audience (DECKGEN_GOOGLE_AUDIENCE): %s; issuer: %s; email: %s', info.aud, info.iss, info.email);
  return info;
}

/**
 * The claims of a JWT (no signature check: the backend does that).
 * @param {string} token
 * @returns {Object<string, any>}
 */
function decodeJwtPayload_(token) {
  var parts = String(token || '').split('.');
  if (parts.length !== 3) {
    throw new Error('No identity token: the manifest needs the "openid" scope.');
  }
  var payload = parts[1];
  while (payload.length % 4) payload += '=';
  var json = Utilities.newBlob(Utilities.base64DecodeWebSafe(payload)).getDataAsString();
  return JSON.parse(json);
}

// ---------------------------------------------------------------------------
// Backend calls
// ---------------------------------------------------------------------------

/**
 * Calls the backend and returns its parsed JSON answer. Any failure becomes an
 * Error whose message a sales rep can act on (google.script.run hands it to
 * the sidebar's failure handler).
 * @param {GoogleAppsScript.URL_Fetch.HttpMethod} method
 * @param {string} path starts with `/v1/`
 * @param {any} body sent as JSON; undefined for none
 * @returns {any}
 */
function backendFetch_(method, path, body) {
  var base = getBackendUrl_();
  if (!base) {
    throw new Error('Deck generator has no backend URL yet. Open Deck generator › Settings… and enter the address your admin gave you.');
  }
  var identityToken = ScriptApp.getIdentityToken();
  if (!identityToken) {
    // Happens when the manifest lacks the openid scope.
    throw new Error(describeBackendError_(401, null, base, path));
  }
  /** @type {GoogleAppsScript.URL_Fetch.URLFetchRequestOptions} */
  var options = {
    method: method,
    contentType: 'application/json',
    muteHttpExceptions: true,
    // The request carries the user's OAuth token: never let a redirect carry it elsewhere.
    followRedirects: false,
    headers: {
      Authorization: 'Bearer ' + identityToken,
      'X-Goog-User-Token': ScriptApp.getOAuthToken(),
      Accept: 'application/json',
    },
  };
  if (body !== undefined) {
    options.payload = JSON.stringify(body);
  }
  var response;
  try {
    response = UrlFetchApp.fetch(base + path, options);
  } catch (err) {
    console.warn('deckgen: ' + method.toUpperCase() + ' ' + base + path + ' failed: ' + errorText_(err));
    throw new Error(unreachableMessage_(base));
  }
  var status = response.getResponseCode();
  var data = parseJson_(response.getContentText());
  if (status >= 200 && status < 300 && data !== undefined) {
    return data;
  }
  if (status >= 400) {
    console.warn('deckgen: ' + method.toUpperCase() + ' ' + path + ' answered ' + status + ': ' + truncate_(response.getContentText(), 500));
  }
  throw new Error(describeBackendError_(status, data, base, path));
}

/** @returns {string | null} the saved backend URL, without a trailing slash */
function getBackendUrl_() {
  return PropertiesService.getUserProperties().getProperty(BACKEND_URL_PROPERTY);
}

/**
 * @param {string} jobId
 * @returns {string}
 */
function jobPath_(jobId) {
  var id = String(jobId || '').trim();
  if (!/^[A-Za-z0-9_.-]{1,200}$/.test(id)) {
    throw new Error('That is not a deck generator job id.');
  }
  return '/v1/jobs/' + encodeURIComponent(id);
}

// ---------------------------------------------------------------------------
// Pure helpers (tested in test/)
// ---------------------------------------------------------------------------

/**
 * Turns "Name — Role" lines into contacts. Accepts an em dash, an en dash, a
 * spaced hyphen, a comma or a vertical bar between name and role; the role may
 * be left out. Blank lines are skipped.
 * @param {string | undefined | null} text
 * @returns {{contacts: {name: string, role: string}[], errors: string[]}}
 */
function parseContacts_(text) {
  /** @type {{name: string, role: string}[]} */
  var contacts = [];
  /** @type {string[]} */
  var errors = [];
  // In order of preference: "Smith, Dana — CFO" splits at the dash, not the comma.
  var separators = [/\s*—\s*/, /\s*–\s*/, /\s+-\s+/, /\s*\|\s*/, /\s*,\s*/];
  splitLines_(text).forEach(function (line) {
    var name = line.text;
    var role = '';
    for (var i = 0; i < separators.length; i++) {
      var m = separators[i].exec(line.text);
      if (m) {
        name = line.text.slice(0, m.index).trim();
        role = line.text.slice(m.index + m[0].length).trim();
        break;
      }
    }
    if (!name) {
      errors.push('Contacts, line ' + line.number + ' (“' + truncate_(line.text, 40) + '”): put the person’s name before the role, like “Dana Smith — CFO”.');
      return;
    }
    contacts.push({ name: name, role: role });
  });
  return { contacts: contacts, errors: errors };
}

/**
 * Turns "key: value" lines into a metrics object. Blank lines are skipped; the
 * first colon splits key from value, so values may contain colons.
 * @param {string | undefined | null} text
 * @returns {{metrics: Object<string, string>, errors: string[]}}
 */
function parseMetrics_(text) {
  /** @type {Object<string, string>} */
  var metrics = {};
  /** @type {string[]} */
  var errors = [];
  splitLines_(text).forEach(function (line) {
    var colon = line.text.indexOf(':');
    var key = colon > 0 ? line.text.slice(0, colon).trim() : '';
    var value = colon > 0 ? line.text.slice(colon + 1).trim() : '';
    if (!key || !value) {
      errors.push('Metrics, line ' + line.number + ' (“' + truncate_(line.text, 40) + '”): write it as “name: value”, like “ARR: $2.4M”.');
      return;
    }
    if (Object.prototype.hasOwnProperty.call(metrics, key)) {
      errors.push('Metrics, line ' + line.number + ': “' + truncate_(key, 40) + '” is already given on an earlier line.');
      return;
    }
    metrics[key] = value;
  });
  return { metrics: metrics, errors: errors };
}

/**
 * Non-blank, trimmed lines with their 1-based line numbers.
 * @param {string | undefined | null} text
 * @returns {{number: number, text: string}[]}
 */
function splitLines_(text) {
  /** @type {{number: number, text: string}[]} */
  var out = [];
  String(text == null ? '' : text)
    .split(/\r\n|\r|\n/)
    .forEach(function (raw, i) {
      var t = raw.trim();
      if (t) out.push({ number: i + 1, text: t });
    });
  return out;
}

/**
 * Builds the body of POST /v1/jobs from the sidebar's form, or says what is
 * wrong with the form (every problem at once, in plain words).
 * @param {JobForm} form
 * @param {string} presentationId
 * @returns {{body: any, errors: string[]}}
 */
function buildJobBody_(form, presentationId) {
  form = form || {};
  /** @type {string[]} */
  var errors = [];
  /** @type {Object<string, any>} */
  var body = { presentation_id: presentationId };
  var opportunityId = clean_(form.opportunityId);
  var mode = form.mode === 'regenerate' ? 'regenerate' : 'fill';

  if (opportunityId) {
    body.opportunity_id = opportunityId;
  } else {
    var client = clean_(form.client);
    if (!client) {
      errors.push('Client: enter the client’s name (or start from a CRM opportunity id instead).');
    }
    var contacts = parseContacts_(form.contacts);
    var metrics = parseMetrics_(form.metrics);
    errors = errors.concat(contacts.errors, metrics.errors);
    body.brief = {
      client: client,
      industry: clean_(form.industry),
      opportunity: clean_(form.opportunity),
      notes: String(form.notes == null ? '' : form.notes).trim(),
      contacts: contacts.contacts,
      metrics: metrics.metrics,
    };
  }

  if (mode === 'regenerate') {
    var section = clean_(form.section);
    if (!isSectionName_(section)) {
      errors.push('Section: pick the section to regenerate.');
    } else {
      body.sections = [section];
    }
    // Regenerating means replacing what is there, hand edits included.
    body.keep_edits = false;
  } else {
    var picked = toList_(form.sections).map(clean_).filter(function (s) { return s; });
    var bad = picked.filter(function (s) { return !isSectionName_(s); });
    if (!picked.length) {
      errors.push('Sections: tick at least one section to write.');
    } else if (bad.length) {
      errors.push('Sections: “' + truncate_(bad[0], 40) + '” is not a section name.');
    } else {
      body.sections = dedupe_(picked);
    }
    body.keep_edits = toBool_(form.keepEdits);
  }
  return { body: body, errors: errors };
}

/**
 * Checks a backend URL typed in Settings. https:// is required, except plain
 * http:// to localhost or 127.0.0.1 for development.
 * @param {string | undefined | null} input
 * @returns {{url: string, error: string}}
 */
function validateBackendUrl_(input) {
  var raw = String(input == null ? '' : input).trim();
  if (!raw) {
    return { url: '', error: 'Enter the backend URL, like https://deckgen.example.com.' };
  }
  var m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^\/?#\s]*)([^?#\s]*)([?#].*)?$/.exec(raw);
  if (!m || /\s/.test(raw)) {
    return { url: '', error: '“' + truncate_(raw, 60) + '” is not a web address. It should look like https://deckgen.example.com.' };
  }
  var scheme = m[1].toLowerCase();
  var authority = m[2];
  var path = m[3].replace(/\/+$/, '');
  if (m[4]) {
    return { url: '', error: 'Leave out the part after “?” or “#”: enter just the backend’s address.' };
  }
  if (authority.indexOf('@') !== -1) {
    return { url: '', error: 'The backend URL must not contain a user name or password.' };
  }
  var hostPort = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/.exec(authority);
  if (!hostPort || (hostPort[2] && Number(hostPort[2]) > 65535)) {
    return { url: '', error: '“' + truncate_(raw, 60) + '” does not name a server. It should look like https://deckgen.example.com.' };
  }
  var host = hostPort[1].toLowerCase();
  if (scheme === 'http') {
    if (host !== 'localhost' && host !== '127.0.0.1') {
      return { url: '', error: 'The backend URL must start with https:// (plain http:// is only allowed for localhost and 127.0.0.1, for development).' };
    }
  } else if (scheme !== 'https') {
    return { url: '', error: 'The backend URL must start with https://.' };
  }
  var port = hostPort[2] ? ':' + hostPort[2] : '';
  return { url: scheme + '://' + host + port + path, error: '' };
}

/**
 * Turns a backend error (status plus parsed body) into words a sales rep can
 * act on.
 * @param {number} status HTTP status
 * @param {any} data parsed JSON body, or undefined/null when there was none
 * @param {string} base backend URL
 * @param {string} path request path
 * @returns {string}
 */
function describeBackendError_(status, data, base, path) {
  /** @type {BackendError | null} */
  var err = data && typeof data === 'object' && data.error && typeof data.error === 'object' ? data.error : null;
  var detail = err && typeof err.message === 'string' ? err.message.trim() : '';
  var isJob = /^\/v1\/jobs\/[^\/]+/.test(path);

  if (status >= 300 && status < 400) {
    return 'Deck generator at ' + base + ' sent us somewhere else. Check the backend URL in Deck generator › Settings… (it may need https:// or a different address).';
  }
  // 401/403/429/503 mean the same whoever says them (a load balancer's 401 is
  // an HTML page). Any other answer that is not JSON — a proxy's error page, a
  // login page, an empty 200 — is not our backend talking.
  if (data === undefined && [401, 403, 429, 503].indexOf(status) === -1) {
    return unreachableMessage_(base);
  }
  if (status === 401) {
    return 'Deck generator could not confirm who you are. Reload the deck and try again.';
  }
  if (status === 403) {
    return isJob
      ? 'That deck generator job belongs to someone else, so you can’t see it. Start your own from Deck generator › Fill this deck….'
      : 'Deck generator won’t accept requests from your account. Ask your admin to give you access.';
  }
  if (status === 404) {
    return isJob
      ? 'Deck generator no longer knows that job (it may have expired). Start it again.'
      : 'Deck generator at ' + base + ' doesn’t offer this. Check the backend URL in Deck generator › Settings….';
  }
  if (status === 422) {
    var field = err && typeof err.field === 'string' ? err.field : '';
    var what = field ? fieldLabel_(field) : 'the brief';
    return 'Please check ' + what + (detail ? ': ' + ensurePeriod_(detail) : '.');
  }
  if (status === 429 || status === 503) {
    return 'Deck generator is busy, try again in a minute.';
  }
  if (status === 409) {
    return 'Deck generator can’t do that now' + (detail ? ': ' + ensurePeriod_(detail) : ' — the job has probably finished already.');
  }
  if (status >= 400 && status < 500) {
    return 'Deck generator refused the request' + (detail ? ': ' + ensurePeriod_(detail) : ' (error ' + status + ').');
  }
  if (status >= 500) {
    return 'Deck generator ran into a problem on its side (error ' + status + '). Try again in a minute; if it keeps happening, tell your admin.';
  }
  // A 2xx whose body was not JSON, or anything else odd.
  return unreachableMessage_(base);
}

/**
 * @param {string} base
 * @returns {string}
 */
function unreachableMessage_(base) {
  return 'Deck generator could not be reached at ' + (base || '(no address set)') + '. Check the backend URL in Deck generator › Settings…, or try again in a minute.';
}

/**
 * Names a backend field path ("brief.client", "contacts[1].name") as the
 * sidebar labels it.
 * @param {string} field
 * @returns {string}
 */
function fieldLabel_(field) {
  var path = String(field).replace(/^brief\./, '');
  var head = path.split(/[.\[]/)[0];
  /** @type {Object<string, string>} */
  var labels = {
    client: 'Client',
    industry: 'Industry',
    opportunity: 'Opportunity',
    notes: 'Notes',
    contacts: 'Contacts',
    metrics: 'Metrics',
    opportunity_id: 'Opportunity id',
    sections: 'Sections',
    presentation_id: 'this deck',
    brief: 'the brief',
  };
  var label = Object.prototype.hasOwnProperty.call(labels, head) ? labels[head] : head;
  var index = /\[(\d+)\]/.exec(path);
  if (index && (head === 'contacts' || head === 'sections')) {
    label += ' (item ' + (Number(index[1]) + 1) + ')';
  } else if (head === 'metrics' && path.length > head.length + 1) {
    label += ' (“' + path.slice(head.length + 1) + '”)';
  }
  return label;
}

/**
 * What the sidebar shows for a job: one line per section and one overall
 * message. `finished` tells the sidebar to stop polling.
 * @param {Job} job
 * @returns {{finished: boolean, state: string, message: string, counts: Object<string, number>,
 *   sections: {section: string, label: string, state: string, text: string, error: string}[], warnings: string[]}}
 */
function summarizeJob_(job) {
  job = job || { id: '', state: '' };
  var state = String(job.state || '');
  var sections = (Array.isArray(job.sections) ? job.sections : []).map(function (s) {
    var sState = String((s && s.state) || 'queued');
    var error = s && s.error && s.error.message ? String(s.error.message) : '';
    /** @type {Object<string, string>} */
    var words = { queued: 'Waiting', running: 'Writing…', done: 'Done', failed: 'Failed', skipped: 'Skipped' };
    var text = words[sState] || sState;
    if (sState === 'done' && typeof s.seconds === 'number') {
      text += ' (' + Math.round(s.seconds) + ' s)';
    }
    var fit = s && s.fit;
    if (sState === 'done' && fit && typeof fit.lines_used === 'number') {
      // lines used of the box's lines: a rep sees at a glance that nothing overflows
      text += ' · ' + fit.lines_used + '/' + fit.lines_available + ' lines';
      if (fit.overflows) text += ', overflows';
      else if (fit.items_dropped) text += ', ' + fit.items_dropped + ' cut';
    }
    return { section: String(s && s.section), label: sectionLabel_(String(s && s.section)), state: sState, text: text, error: error };
  });
  /** @type {Object<string, number>} */
  var counts = { queued: 0, running: 0, done: 0, failed: 0, skipped: 0 };
  sections.forEach(function (s) { counts[s.state] = (counts[s.state] || 0) + 1; });
  var total = sections.length;
  var finished = state === 'done' || state === 'failed' || state === 'cancelled';
  var message;
  if (state === 'queued') {
    message = 'Waiting for the deck generator to start…';
  } else if (state === 'running') {
    message = 'Writing sections: ' + counts.done + ' of ' + total + ' done' + (counts.failed ? ', ' + counts.failed + ' failed' : '') + '…';
  } else if (state === 'done') {
    if (counts.failed) {
      message = 'Finished with problems: ' + counts.done + ' of ' + total + ' section' + plural_(total) + ' written, ' + counts.failed + ' failed (see below).';
    } else {
      message = 'Done: ' + counts.done + ' section' + plural_(counts.done) + ' written into this deck.';
    }
    if (counts.skipped) {
      message += ' ' + counts.skipped + ' skipped.';
    }
  } else if (state === 'failed') {
    message = 'The deck could not be filled' + (job.error && job.error.message ? ': ' + ensurePeriod_(String(job.error.message)) : '.');
    if (counts.done) {
      message += ' ' + counts.done + ' section' + plural_(counts.done) + ' did get written.';
    }
  } else if (state === 'cancelled') {
    message = 'Cancelled.' + (counts.done ? ' What was already written (' + counts.done + ' section' + plural_(counts.done) + ') stays in the deck.' : '');
  } else {
    message = 'Deck generator says the job is “' + state + '”.';
  }
  var warnings = Array.isArray(job.warnings) ? job.warnings.map(String) : [];
  return { finished: finished, state: state, message: message, counts: counts, sections: sections, warnings: warnings };
}

/**
 * Accepts the backend's GET /v1/sections answer; drops malformed entries.
 * @param {any} answer
 * @returns {SectionInfo[]}
 */
function normalizeSections_(answer) {
  var list = answer && Array.isArray(answer.sections) ? answer.sections : [];
  /** @type {SectionInfo[]} */
  var out = [];
  list.forEach(function (/** @type {any} */ s) {
    var name = s && typeof s.name === 'string' ? s.name.trim() : '';
    if (!isSectionName_(name)) return;
    var label = s && typeof s.label === 'string' && s.label.trim() ? s.label.trim() : sectionLabel_(name);
    out.push({ name: name, label: label });
  });
  return out;
}

/**
 * Picks the single selected shape, or says in plain words why not.
 * @param {GoogleAppsScript.Slides.Selection | null} selection
 * @returns {{shape: GoogleAppsScript.Slides.Shape | null, error: string}}
 */
function pickOneShape_(selection) {
  var range = selection ? selection.getPageElementRange() : null;
  var elements = range ? range.getPageElements() : [];
  if (!elements.length) {
    return { shape: null, error: 'Select one text box first, then choose the section.' };
  }
  if (elements.length > 1) {
    return { shape: null, error: 'Select one text box first: ' + elements.length + ' things are selected now.' };
  }
  var element = elements[0];
  var type = element.getPageElementType();
  if (type !== SlidesApp.PageElementType.SHAPE) {
    return { shape: null, error: 'Select one text box first: the selected item is ' + describeElementType_(String(type)) + ', not a text box.' };
  }
  return { shape: element.asShape(), error: '' };
}

/**
 * The section the selected box is marked as, or '' (used to preselect).
 * @returns {string}
 */
function sectionOfSelection_() {
  try {
    var picked = pickOneShape_(SlidesApp.getActivePresentation().getSelection());
    var description = picked.shape ? picked.shape.getDescription() || '' : '';
    var name = description.indexOf(MARK_PREFIX) === 0 ? description.slice(MARK_PREFIX.length).trim() : '';
    return isSectionName_(name) ? name : '';
  } catch (err) {
    return '';
  }
}

/**
 * @param {string} type a SlidesApp.PageElementType name
 * @returns {string}
 */
function describeElementType_(type) {
  /** @type {Object<string, string>} */
  var words = {
    IMAGE: 'an image', TABLE: 'a table', LINE: 'a line', GROUP: 'a group',
    VIDEO: 'a video', WORD_ART: 'word art', SHEETS_CHART: 'a chart', SPEAKER_SPOTLIGHT: 'a speaker spotlight',
  };
  return words[type] || 'not a shape';
}

/**
 * @param {string} name
 * @returns {boolean}
 */
function isSectionName_(name) {
  return typeof name === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(name);
}

/**
 * "current_state" -> "Current state" (built-in label when there is one).
 * @param {string} name
 * @returns {string}
 */
function sectionLabel_(name) {
  for (var i = 0; i < BUILTIN_SECTIONS.length; i++) {
    if (BUILTIN_SECTIONS[i].name === name) return BUILTIN_SECTIONS[i].label;
  }
  var words = String(name || '').replace(/_/g, ' ').trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : 'Section';
}

// ---------------------------------------------------------------------------
// Remembering the last brief for this deck (prefills the sidebar)
// ---------------------------------------------------------------------------

/**
 * Remembers what was sent, keeping earlier values of fields this form did not
 * send (a job started from an opportunity id does not forget the typed brief).
 * @param {JobForm} form
 */
function saveLastForm_(form) {
  try {
    var keep = readLastForm_() || {};
    var f = /** @type {Object<string, any>} */ (form);
    ['client', 'industry', 'opportunity', 'notes', 'contacts', 'metrics'].forEach(function (name) {
      if (f[name] != null) keep[name] = String(f[name]);
    });
    keep.opportunityId = clean_(form.opportunityId);
    var json = JSON.stringify(keep);
    if (json.length <= MAX_PROPERTY_CHARS) {
      PropertiesService.getDocumentProperties().setProperty(LAST_FORM_PROPERTY, json);
    }
  } catch (err) {
    console.warn('deckgen: could not remember the brief: ' + errorText_(err));
  }
}

/** @returns {Object<string, string> | null} */
function readLastForm_() {
  try {
    var json = PropertiesService.getDocumentProperties().getProperty(LAST_FORM_PROPERTY);
    var value = json ? JSON.parse(json) : null;
    return value && typeof value === 'object' ? value : null;
  } catch (err) {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/**
 * @param {string} text
 * @returns {any} the parsed value, or undefined when the text is not JSON
 */
function parseJson_(text) {
  if (!text || !String(text).trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    return undefined;
  }
}

/**
 * @param {any} value
 * @returns {string}
 */
function clean_(value) {
  return value == null ? '' : String(value).replace(/\s+/g, ' ').trim();
}

/**
 * A form value that may be missing, one string or a list.
 * @param {any} value
 * @returns {string[]}
 */
function toList_(value) {
  if (value == null || value === '') return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}

/**
 * @param {string[]} list
 * @returns {string[]}
 */
function dedupe_(list) {
  return list.filter(function (item, i) { return list.indexOf(item) === i; });
}

/**
 * @param {any} value true, "true", "on" are true
 * @returns {boolean}
 */
function toBool_(value) {
  return value === true || value === 'true' || value === 'on';
}

/**
 * @param {string} text
 * @param {number} max
 * @returns {string}
 */
function truncate_(text, max) {
  var s = String(text == null ? '' : text);
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

/**
 * @param {string} text
 * @returns {string}
 */
function ensurePeriod_(text) {
  return /[.!?…]$/.test(text) ? text : text + '.';
}

/**
 * @param {number} n
 * @returns {string}
 */
function plural_(n) {
  return n === 1 ? '' : 's';
}

/**
 * @param {any} err
 * @returns {string}
 */
function errorText_(err) {
  return err && err.message ? String(err.message) : String(err);
}
