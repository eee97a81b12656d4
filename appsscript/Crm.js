/**
 * deckgen — the CRM door as the sidebar sees it: which CRMs the backend is
 * connected to (GET /v1/crms), the opportunity id read from what a rep typed
 * or pasted, the brief the backend resolved from the record
 * (POST /v1/briefs/resolve) turned into a read-only preview, a job's
 * opportunity and the write-back of the deck's link as lines the progress view
 * shows, and the CRM's errors in words a sales rep can act on.
 */

/** @typedef {{name: string, label: string, hint: string}} CrmInfo */
/** @typedef {{crm: string, opportunityId: string}} CrmTarget */
/**
 * What POST /v1/briefs/resolve answers.
 * @typedef {{
 *   crm?: string, opportunity_id?: string, name?: string | null, stage?: string | null,
 *   url?: string | null, brief?: any, missing?: string[]
 * }} ResolvedOpportunity
 */
/**
 * The resolved brief as the sidebar shows it, read-only, before Fill.
 * @typedef {{
 *   crm: string, crmLabel: string, opportunityId: string, title: string, url: string,
 *   linkText: string, fields: {label: string, text: string}[], contacts: string[],
 *   notes: string, missing: string
 * }} OpportunityPreview
 */

/** The CRMs deckgen can read, with what each calls an opportunity. */
var CRM_WORDS = {
  salesforce: {
    label: 'Salesforce', record: 'opportunity', example: 'like 006Qx00000AbCdE',
    hint: 'The id in the opportunity’s address (…/Opportunity/006…/view), or the whole address.',
  },
  hubspot: {
    label: 'HubSpot', record: 'deal', example: 'a number, like 18734290112',
    hint: 'The deal’s record id (the number at the end of its address), or the whole address.',
  },
};

/** Contacts shown in a preview before "and N more". */
var PREVIEW_CONTACTS = 6;

/** Characters of the notes shown in a preview. */
var PREVIEW_NOTES_CHARS = 200;

/**
 * The CRMs the backend is connected to, for the sidebar's "From CRM" choice:
 * none when the backend cannot say (an older backend answers 404).
 * @returns {CrmInfo[]}
 */
function listCrms_() {
  try {
    return normalizeCrms_(backendFetch_('get', '/v1/crms', undefined));
  } catch (err) {
    console.warn('deckgen: could not list CRMs: ' + errorText_(err));
    return [];
  }
}

/**
 * Accepts GET /v1/crms; keeps the configured CRMs only.
 * @param {any} answer
 * @returns {CrmInfo[]}
 */
function normalizeCrms_(answer) {
  var list = answer && Array.isArray(answer.crms) ? answer.crms : [];
  /** @type {CrmInfo[]} */
  var out = [];
  list.forEach(function (/** @type {any} */ c) {
    var name = c && typeof c.name === 'string' ? c.name.trim() : '';
    if (!isCrmName_(name) || !c || c.configured !== true) return;
    if (out.some(function (known) { return known.name === name; })) return;
    var label = typeof c.label === 'string' && c.label.trim() ? c.label.trim() : crmLabel_(name);
    var words = /** @type {Object<string, {hint: string}>} */ (CRM_WORDS)[name];
    out.push({ name: name, label: label, hint: words ? words.hint : 'The record’s id in ' + label + '.' });
  });
  return out;
}

/**
 * The CRM to preselect: this deck's last one, else this user's last one, else
 * the first configured.
 * @param {CrmInfo[]} crms
 * @param {Object<string, string> | null} lastForm
 * @returns {string}
 */
function defaultCrm_(crms, lastForm) {
  var names = crms.map(function (c) { return c.name; });
  var candidates = [lastForm && lastForm.crm, readLastCrm_(), names[0]];
  for (var i = 0; i < candidates.length; i++) {
    if (candidates[i] && names.indexOf(String(candidates[i])) !== -1) return String(candidates[i]);
  }
  return '';
}

/**
 * The CRM and opportunity id a form names, or what is wrong with them.
 * @param {{crm?: string, opportunityId?: string}} form
 * @returns {CrmTarget & {errors: string[]}}
 */
function crmTarget_(form) {
  var crm = clean_(form && form.crm).toLowerCase();
  if (!isCrmName_(crm)) {
    return { crm: '', opportunityId: '', errors: ['CRM: pick the CRM the opportunity is in.'] };
  }
  var read = readOpportunityId_(crm, form.opportunityId);
  return { crm: crm, opportunityId: read.id, errors: read.error ? [read.error] : [] };
}

/**
 * The record id in what a rep typed: the id itself, or the address of the
 * record's page (Salesforce: …/Opportunity/006…/view; HubSpot: …/deal/123 or
 * …/record/0-3/123).
 * @param {string} crm
 * @param {any} text
 * @returns {{id: string, error: string}}
 */
function readOpportunityId_(crm, text) {
  var raw = String(text == null ? '' : text).trim();
  var what = crmLabel_(crm) + ' ' + recordNoun_(crm);
  if (!raw) {
    return { id: '', error: 'Opportunity id: enter the ' + what + '’s id.' };
  }
  var id = raw;
  if (/^https?:\/\//i.test(raw)) {
    var found = crm === 'salesforce' ? /\/(006[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)(?=[\/?#]|$)/.exec(raw)
      : crm === 'hubspot' ? /\/(?:deal|record\/0-3)\/(\d{1,20})(?=[\/?#]|$)/.exec(raw)
        : null;
    if (!found) {
      return { id: '', error: 'Opportunity id: that address is not a ' + what + '’s page. Paste the ' + what + '’s id, or the address of its page.' };
    }
    id = found[1];
  }
  /** @type {Object<string, RegExp>} */
  var shapes = { salesforce: /^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$/, hubspot: /^\d{1,20}$/ };
  var shape = shapes[crm] || /^[A-Za-z0-9._-]{1,100}$/;
  if (!shape.test(id)) {
    var words = /** @type {Object<string, {example: string}>} */ (CRM_WORDS)[crm];
    return { id: '', error: 'Opportunity id: “' + truncate_(raw, 40) + '” is not a ' + what + ' id' + (words ? ' (it is ' + words.example + ').' : '.') };
  }
  return { id: id, error: '' };
}

/**
 * Turns POST /v1/briefs/resolve's answer into the preview the sidebar shows.
 * @param {ResolvedOpportunity} answer
 * @param {CrmTarget} target what was asked for
 * @returns {OpportunityPreview}
 */
function previewOfResolved_(answer, target) {
  var brief = answer && answer.brief && typeof answer.brief === 'object' ? answer.brief : {};
  var crm = answer && isCrmName_(String(answer.crm)) ? String(answer.crm) : target.crm;
  var label = crmLabel_(crm);
  var id = clean_(answer && answer.opportunity_id) || target.opportunityId;
  /** @type {{label: string, text: string}[]} */
  var fields = [];
  /** @type {[string, any][]} */
  var rows = [['Client', brief.client], ['Industry', brief.industry], ['Opportunity', brief.opportunity], ['Stage', answer && answer.stage]];
  rows.forEach(function (row) {
    var text = clean_(row[1]);
    if (text) fields.push({ label: row[0], text: text });
  });
  var metrics = brief.metrics && typeof brief.metrics === 'object' ? Object.keys(brief.metrics) : [];
  if (metrics.length) fields.push({ label: 'Metrics', text: metrics.join(', ') });

  var contacts = (Array.isArray(brief.contacts) ? brief.contacts : [])
    .filter(function (/** @type {any} */ c) { return c && clean_(c.name); })
    .map(function (/** @type {any} */ c) { return clean_(c.name) + (clean_(c.role) ? ' — ' + clean_(c.role) : ''); });
  if (contacts.length > PREVIEW_CONTACTS) {
    var more = contacts.length - PREVIEW_CONTACTS + 1;
    contacts = contacts.slice(0, PREVIEW_CONTACTS - 1).concat(['and ' + more + ' more']);
  }

  var missing = (Array.isArray(answer && answer.missing) ? /** @type {string[]} */ (answer.missing) : [])
    .map(function (f) { return fieldLabel_(String(f)); });
  return {
    crm: crm,
    crmLabel: label,
    opportunityId: id,
    title: clean_(answer && answer.name) || label + ' ' + recordNoun_(crm) + ' ' + id,
    url: safeLink_(answer && answer.url),
    linkText: 'Open in ' + label,
    fields: fields,
    contacts: contacts,
    notes: startOf_(brief.notes, PREVIEW_NOTES_CHARS),
    missing: missing.length ? label + ' had nothing for ' + wordList_(dedupe_(missing)) + '; the deck is written without ' + (missing.length === 1 ? 'it' : 'them') + '.' : '',
  };
}

/**
 * A job's opportunity as the progress view shows it, or null for a typed brief.
 * @param {JobOpportunity | null | undefined} opportunity
 * @returns {{text: string, url: string, linkText: string} | null}
 */
function opportunityLine_(opportunity) {
  if (!opportunity || typeof opportunity !== 'object' || !opportunity.crm) return null;
  var crm = String(opportunity.crm);
  var name = clean_(opportunity.name) || clean_(opportunity.id);
  return {
    text: 'From the ' + crmLabel_(crm) + ' ' + recordNoun_(crm) + ' “' + truncate_(name, 80) + '”.',
    url: safeLink_(opportunity.url),
    linkText: 'Open in ' + crmLabel_(crm),
  };
}

/**
 * Where writing the deck's link onto the CRM record stands, in words.
 * @param {JobWriteback | null | undefined} writeback
 * @param {JobOpportunity | null | undefined} opportunity
 * @returns {{state: string, text: string} | null}
 */
function writebackLine_(writeback, opportunity) {
  if (!writeback || typeof writeback !== 'object' || !writeback.state) return null;
  var crm = opportunity && opportunity.crm ? String(opportunity.crm) : '';
  var label = crm ? crmLabel_(crm) : 'the CRM';
  var state = String(writeback.state);
  var attempts = typeof writeback.attempts === 'number' ? writeback.attempts : 0;
  if (state === 'done') {
    return { state: state, text: 'Link saved on the ' + label + ' ' + recordNoun_(crm) + '.' };
  }
  if (state === 'failed') {
    var reason = writeback.error && writeback.error.message ? String(writeback.error.message).trim() : '';
    return {
      state: state,
      text: 'Saving the link to ' + label + ' failed' + (reason ? ': ' + ensurePeriod_(reason) : '.') +
        ' The deck itself is filled; add its link to the ' + recordNoun_(crm) + ' by hand.',
    };
  }
  return {
    state: state,
    text: 'Saving the link to ' + label + '…' + (attempts > 0 ? ' (' + attempts + ' tr' + (attempts === 1 ? 'y' : 'ies') + ' so far)' : ''),
  };
}

/**
 * The CRM's own errors in words, or '' when the code is not one of them.
 * @param {BackendError | null} err the body's error object
 * @param {number | null} retryAfter seconds from the Retry-After header
 * @param {CrmTarget | undefined} context the CRM and record asked about
 * @returns {string}
 */
function describeCrmError_(err, retryAfter, context) {
  var code = err && typeof err.code === 'string' ? err.code : '';
  var detail = err && typeof err.message === 'string' ? err.message.trim() : '';
  var crm = context && context.crm ? context.crm : '';
  var label = crm ? crmLabel_(crm) : 'the CRM';
  var noun = recordNoun_(crm);
  var id = context && context.opportunityId ? context.opportunityId : '';
  if (code === 'opportunity_not_found') {
    return capitalize_(label) + ' has no ' + noun + (id ? ' “' + id + '”' : ' with that id') +
      '. Check the id: it is in the address of the ' + noun + '’s page.';
  }
  if (code === 'crm_forbidden') {
    return 'Deck generator may not read this ' + noun + ' in ' + label + (detail ? ': ' + ensurePeriod_(detail) : '.') +
      ' Ask your ' + label + ' admin to give deck generator’s ' + label + ' user access to it.';
  }
  if (code === 'crm_not_configured') {
    return 'Deck generator is not connected to ' + label + ' yet. Ask your admin to connect it, or type the brief instead.';
  }
  if (code === 'crm_field_missing') {
    var field = err && typeof err.field === 'string' && err.field ? fieldLabel_(err.field) : 'a field the brief needs';
    return capitalize_(label) + ' has nothing for ' + field + ' on this ' + noun + (detail ? ': ' + ensurePeriod_(detail) : '.') +
      ' Fill it in ' + label + ' and look the ' + noun + ' up again, or type the brief instead.';
  }
  if (code === 'crm_unavailable') {
    return capitalize_(label) + ' isn’t answering right now. Try again ' + retryWords_(retryAfter) + '.';
  }
  return '';
}

/**
 * @param {string} name
 * @returns {boolean}
 */
function isCrmName_(name) {
  return typeof name === 'string' && /^[a-z][a-z0-9_]{0,31}$/.test(name);
}

/**
 * @param {string} crm
 * @returns {string} "Salesforce", "HubSpot", else the name capitalised
 */
function crmLabel_(crm) {
  var words = /** @type {Object<string, {label: string}>} */ (CRM_WORDS)[crm];
  return words ? words.label : capitalize_(String(crm || 'the CRM'));
}

/**
 * @param {string} crm
 * @returns {string} what the CRM calls an opportunity
 */
function recordNoun_(crm) {
  var words = /** @type {Object<string, {record: string}>} */ (CRM_WORDS)[crm];
  return words ? words.record : 'record';
}

/**
 * A link the sidebar may show: https only.
 * @param {any} url
 * @returns {string}
 */
function safeLink_(url) {
  var s = typeof url === 'string' ? url.trim() : '';
  return /^https:\/\/[^\s"'<>]+$/i.test(s) ? s : '';
}

/**
 * The first `max` characters of a text, whitespace folded, cut at a word.
 * @param {any} text
 * @param {number} max
 * @returns {string}
 */
function startOf_(text, max) {
  var s = clean_(text);
  if (s.length <= max) return s;
  var cut = s.slice(0, max);
  var space = cut.lastIndexOf(' ');
  return (space > max / 2 ? cut.slice(0, space) : cut).replace(/[\s,;:.]+$/, '') + '…';
}
