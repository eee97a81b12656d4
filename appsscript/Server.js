/**
 * deckgen — the functions the sidebar and the dialogs call with google.script.run.
 *
 * Each one is short: it reads what it needs from the deck or the settings, asks
 * the backend (Backend.js), and returns plain data the page shows as it is. No
 * call here ever waits for a job to finish: the sidebar polls pollJob every
 * couple of seconds (Apps Script stops an execution after 6 minutes).
 */

/** @typedef {{name: string, label: string}} SectionInfo */

/**
 * @typedef {{
 *   section: string, state: string, route?: string, model?: string,
 *   seconds?: number, error?: BackendError | null, fit?: SectionFit | null,
 *   flagged?: boolean
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
 *   url?: string, warnings?: string[], error?: BackendError | null,
 *   status?: string | null, summary?: any, queue?: JobQueue | null,
 *   opportunity?: JobOpportunity | null, writeback?: JobWriteback | null
 * }} Job
 */
/**
 * The CRM record a job's brief was read from.
 * @typedef {{crm: string, id: string, url?: string | null, name?: string | null}} JobOpportunity
 */
/**
 * Writing the finished deck's link onto that record.
 * @typedef {{state: string, attempts?: number, error?: BackendError | null}} JobWriteback
 */
/**
 * Where a waiting job stands, as the backend estimates it.
 * @typedef {{
 *   lane: string, ahead?: number | null, eta_seconds?: number | null
 * }} JobQueue
 */
/**
 * What the sidebar sends to startJob (a plain object built by SidebarJs.html).
 * `source` "crm" means the brief is read from the record `crm` /
 * `opportunityId`; anything else, the typed fields.
 * @typedef {{
 *   mode?: string, source?: string, crm?: string, opportunityId?: string,
 *   client?: string, industry?: string, opportunity?: string,
 *   notes?: string, contacts?: string, metrics?: string,
 *   sections?: string[] | string, section?: string, keepEdits?: boolean | string
 * }} JobForm
 */

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
  var crm = built.body.crm ? { crm: built.body.crm, opportunityId: built.body.opportunity_id } : undefined;
  var job = /** @type {Job} */ (backendFetch_('post', '/v1/jobs', built.body, crm));
  if (!job || typeof job.id !== 'string' || !job.id) {
    throw new Error(unreachableMessage_(getBackendUrl_() || ''));
  }
  saveLastForm_(form);
  if (crm) saveLastCrm_(crm.crm);
  return job;
}

/**
 * Asks the backend to read the opportunity's brief from the CRM, and returns
 * it as the sidebar previews it before Fill (nothing is started).
 * @param {{crm?: string, opportunityId?: string}} form
 * @returns {OpportunityPreview}
 */
function lookUpOpportunity(form) {
  var target = crmTarget_(form || {});
  if (target.errors.length) {
    throw new Error(target.errors.join('\n'));
  }
  var context = { crm: target.crm, opportunityId: target.opportunityId };
  var answer = /** @type {ResolvedOpportunity} */ (backendFetch_('post', '/v1/briefs/resolve', { crm: target.crm, opportunity_id: target.opportunityId }, context));
  if (!answer || typeof answer !== 'object' || !answer.brief || typeof answer.brief !== 'object') {
    throw new Error(unreachableMessage_(getBackendUrl_() || ''));
  }
  saveLastCrm_(target.crm);
  return previewOfResolved_(answer, context);
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
 * The sections to offer: the backend's list, or the generated list (Sections.js) when there
 * is no backend URL yet or the backend cannot be reached.
 * @returns {{sections: SectionInfo[], fromBackend: boolean, warning: string}}
 */
function listSections() {
  if (!getBackendUrl_()) {
    return { sections: SECTIONS.slice(), fromBackend: false, warning: 'No backend URL yet: set it in Deck generator › Settings….' };
  }
  try {
    var answer = backendFetch_('get', '/v1/sections', undefined);
    var sections = normalizeSections_(answer);
    if (sections.length) {
      return { sections: sections, fromBackend: true, warning: '' };
    }
    return { sections: SECTIONS.slice(), fromBackend: false, warning: '' };
  } catch (err) {
    console.warn('deckgen: could not list sections: ' + errorText_(err));
    return { sections: SECTIONS.slice(), fromBackend: false, warning: errorText_(err) };
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

// ---------------------------------------------------------------------------
// Section names and labels (the list itself is Sections.js, generated)
// ---------------------------------------------------------------------------

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
 * @param {string} name
 * @returns {boolean}
 */
function isSectionName_(name) {
  return typeof name === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(name);
}

/**
 * The label Sections.js gives a section, else its name in words
 * ("next_steps" -> "Next steps").
 * @param {string} name
 * @returns {string}
 */
function sectionLabel_(name) {
  for (var i = 0; i < SECTIONS.length; i++) {
    if (SECTIONS[i].name === name) return SECTIONS[i].label;
  }
  var words = String(name || '').replace(/_/g, ' ').trim();
  return words ? words.charAt(0).toUpperCase() + words.slice(1) : 'Section';
}
