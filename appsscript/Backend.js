/**
 * deckgen — HTTP to the deckgen service (UrlFetchApp).
 *
 * Every request carries the user's identity token (who is asking) and OAuth
 * token (what the backend writes with); any failure becomes an Error whose
 * message a sales rep can act on, which google.script.run hands to the page's
 * failure handler.
 */

/** @typedef {{code: string, message: string, field?: string}} BackendError */

/**
 * Calls the backend and returns its parsed JSON answer. Any failure becomes an
 * Error whose message a sales rep can act on (google.script.run hands it to
 * the sidebar's failure handler).
 * @param {GoogleAppsScript.URL_Fetch.HttpMethod} method
 * @param {string} path starts with `/v1/`
 * @param {any} body sent as JSON; undefined for none
 * @param {CrmTarget} [crmContext] the CRM record the request is about, for the
 *   wording of the CRM's errors
 * @returns {any}
 */
function backendFetch_(method, path, body, crmContext) {
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
  throw new Error(describeBackendError_(status, data, base, path, retryAfterSeconds_(response), crmContext));
}

/**
 * The Retry-After of an answer in seconds (a number or an HTTP date), or null.
 * @param {GoogleAppsScript.URL_Fetch.HTTPResponse} response
 * @returns {number | null}
 */
function retryAfterSeconds_(response) {
  var headers = /** @type {Object<string, any>} */ (response.getHeaders ? response.getHeaders() || {} : {});
  var value = '';
  Object.keys(headers).forEach(function (name) {
    if (name.toLowerCase() === 'retry-after') value = String(headers[name]).trim();
  });
  if (/^\d+$/.test(value)) return Number(value);
  var when = value ? Date.parse(value) : NaN;
  return isNaN(when) ? null : Math.max(0, Math.round((when - Date.now()) / 1000));
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

/**
 * Turns a backend error (status plus parsed body) into words a sales rep can
 * act on.
 * @param {number} status HTTP status
 * @param {any} data parsed JSON body, or undefined/null when there was none
 * @param {string} base backend URL
 * @param {string} path request path
 * @param {number | null} [retryAfter] seconds from the Retry-After header
 * @param {CrmTarget} [crmContext] the CRM record the request was about
 * @returns {string}
 */
function describeBackendError_(status, data, base, path, retryAfter, crmContext) {
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
  // The CRM's errors (a record not found, not readable, the CRM away) by their code.
  var crmMessage = describeCrmError_(err, retryAfter == null ? null : retryAfter, crmContext);
  if (crmMessage) {
    return crmMessage;
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
    return 'Deck generator is busy, try again ' + retryWords_(retryAfter) + '.';
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
    facts: 'Facts',
    crm: 'CRM',
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

// ---------------------------------------------------------------------------
// Setting up the backend: the identity token's audience
// ---------------------------------------------------------------------------

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
