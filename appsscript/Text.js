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

/**
 * @param {string} text
 * @returns {string} the text with its first letter upper-case
 */
function capitalize_(text) {
  var s = String(text == null ? '' : text);
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * @param {string[]} items
 * @returns {string} "a", "a and b", "a, b and c"
 */
function wordList_(items) {
  if (items.length < 2) return items.join('');
  return items.slice(0, -1).join(', ') + ' and ' + items[items.length - 1];
}

/**
 * When to try again, from a Retry-After in seconds ("in a minute" without one).
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
function retryWords_(seconds) {
  if (typeof seconds !== 'number' || !isFinite(seconds) || seconds < 0) return 'in a minute';
  var s = Math.max(1, Math.ceil(seconds));
  if (s < 90) return 'in ' + s + ' second' + plural_(s);
  var minutes = Math.ceil(s / 60);
  return 'in ' + minutes + ' minutes';
}
