/**
 * deckgen — what the add-on remembers (PropertiesService): the backend's URL
 * and the CRM last looked in, per user, and the last brief sent from a deck
 * (typed, or the CRM record it came from), per document (it prefills the
 * sidebar).
 */

/** User property holding the backend's base URL. */
var BACKEND_URL_PROPERTY = 'DECKGEN_BACKEND_URL';

/** User property holding the CRM this user last read an opportunity from (preselected next time). */
var LAST_CRM_PROPERTY = 'DECKGEN_LAST_CRM';

/** Document property holding the last form sent from this deck (prefills the sidebar). */
var LAST_FORM_PROPERTY = 'DECKGEN_LAST_FORM';

/** Apps Script refuses property values above 9 kB. */
var MAX_PROPERTY_CHARS = 9000;

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

/** @returns {string | null} the saved backend URL, without a trailing slash */
function getBackendUrl_() {
  return PropertiesService.getUserProperties().getProperty(BACKEND_URL_PROPERTY);
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
 * Remembers what was sent, keeping earlier values of fields this form did not
 * send.
 * @param {JobForm} form
 */
function saveLastForm_(form) {
  try {
    var keep = readLastForm_() || {};
    var f = /** @type {Object<string, any>} */ (form);
    ['source', 'crm', 'opportunityId', 'client', 'industry', 'opportunity', 'notes', 'contacts', 'metrics'].forEach(function (name) {
      if (f[name] != null) keep[name] = String(f[name]);
    });
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

/**
 * Remembers the CRM this user last read an opportunity from.
 * @param {string} crm
 */
function saveLastCrm_(crm) {
  try {
    if (isCrmName_(crm)) PropertiesService.getUserProperties().setProperty(LAST_CRM_PROPERTY, crm);
  } catch (err) {
    console.warn('deckgen: could not remember the CRM: ' + errorText_(err));
  }
}

/** @returns {string} the CRM this user last read an opportunity from, or '' */
function readLastCrm_() {
  try {
    return PropertiesService.getUserProperties().getProperty(LAST_CRM_PROPERTY) || '';
  } catch (err) {
    return '';
  }
}
