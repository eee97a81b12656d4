/**
 * deckgen — the box a rep selected on the slide, and the alt-text mark
 * (`deckgen:<section>`) that tells the backend which section a box is for.
 */

/** Prefix of a shape's alt-text description that marks it as a section's box. */
var MARK_PREFIX = 'deckgen:';

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
