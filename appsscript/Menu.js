/**
 * deckgen — the "Deck generator" menu and the pages it opens.
 *
 * onOpen builds the menu (in AuthMode.NONE nothing else is allowed there); each
 * menu item opens the sidebar or a dialog from an HtmlService template, handing
 * it what it needs as one JSON "boot" object. Apps Script runs every .js file of
 * the project in one global scope, so the functions of the other files are
 * called here by name. Names ending in `_` are private: google.script.run
 * cannot call them.
 */

var MENU_TITLE = 'Deck generator';

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
  // Not asked when the backend did not answer for the sections: no second wait.
  var crms = sections.fromBackend ? listCrms_() : [];
  var lastForm = readLastForm_();
  var boot = {
    mode: mode,
    sections: sections.sections,
    sectionsWarning: sections.warning,
    backendUrl: getBackendUrl_() || '',
    lastForm: lastForm,
    selectedSection: mode === 'regenerate' ? sectionOfSelection_() : '',
    crms: crms,
    crm: defaultCrm_(crms, lastForm),
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
