/**
 * deckgen — a job as the sidebar sees it: the form turned into the body of
 * POST /v1/jobs (or every problem with it, in plain words), and a job the
 * backend reports turned into the lines the sidebar shows. Pure functions:
 * no Apps Script service is used here.
 */

/**
 * Builds the body of POST /v1/jobs from the sidebar's form, or says what is
 * wrong with the form (every problem at once, in plain words). The brief is
 * either typed (`brief`) or read by the backend from a CRM record (`crm` and
 * `opportunity_id`), never both.
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
  var mode = form.mode === 'regenerate' ? 'regenerate' : 'fill';

  if (form.source === 'crm') {
    var target = crmTarget_(form);
    errors = errors.concat(target.errors);
    body.crm = target.crm;
    body.opportunity_id = target.opportunityId;
  } else {
    var typed = typedBrief_(form);
    errors = errors.concat(typed.errors);
    body.brief = typed.brief;
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
 * The brief typed into the sidebar, or what is wrong with it.
 * @param {JobForm} form
 * @returns {{brief: Object<string, any>, errors: string[]}}
 */
function typedBrief_(form) {
  /** @type {string[]} */
  var errors = [];
  var client = clean_(form.client);
  if (!client) {
    errors.push('Client: enter the client’s name.');
  }
  var contacts = parseContacts_(form.contacts);
  var metrics = parseMetrics_(form.metrics);
  errors = errors.concat(contacts.errors, metrics.errors);
  var brief = {
    client: client,
    industry: clean_(form.industry),
    opportunity: clean_(form.opportunity),
    notes: String(form.notes == null ? '' : form.notes).trim(),
    contacts: contacts.contacts,
    metrics: metrics.metrics,
  };
  return { brief: brief, errors: errors };
}

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
 * What the sidebar shows for a job: one line per section and one overall
 * message, and for a job from a CRM record, the record and whether the deck's
 * link has been saved on it. `finished` tells the sidebar the job is over (its
 * write-back may still be pending: the sidebar keeps an eye on that alone).
 * @param {Job} job
 * @returns {{finished: boolean, state: string, message: string, counts: Object<string, number>,
 *   sections: {section: string, label: string, state: string, text: string, error: string}[], warnings: string[],
 *   opportunity: ReturnType<typeof opportunityLine_>, writeback: ReturnType<typeof writebackLine_>}}
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
    if (sState === 'done' && s.flagged) text += ' · claims to check';
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
  var queue = job.queue || null;
  if (state === 'queued' && queue && typeof queue.ahead === 'number' && queue.ahead > 0) {
    // the service's own estimate from measured rates; none until it has measured some
    message = 'Queued behind ' + queue.ahead + ' deck' + plural_(queue.ahead) +
      (typeof queue.eta_seconds === 'number' ? ', about ' + Math.max(1, Math.round(queue.eta_seconds)) + ' s' : '') + '…';
  } else if (state === 'queued') {
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
    if (job.status === 'incomplete' && job.summary) {
      // written, but not all right: overflow, no box, or claims the brief does not support
      message += ' Check: ' + ensurePeriod_(String(job.summary));
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
  return {
    finished: finished, state: state, message: message, counts: counts, sections: sections, warnings: warnings,
    opportunity: opportunityLine_(job.opportunity), writeback: writebackLine_(job.writeback, job.opportunity),
  };
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
