/**
 * deckgen — small string helpers the messages of the other files share.
 */

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
