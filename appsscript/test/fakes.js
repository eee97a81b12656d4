'use strict';
// Hand-written stand-ins for the Apps Script services the server-side files
// use, and a loader that runs those files (every .js file at the top of
// appsscript/, the ones clasp pushes) in one fresh vm context with them, as
// Apps Script runs every .js file of a project in one global scope.
// Not a test file itself: package.json runs only test/*.test.js.

const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const ROOT = path.join(__dirname, '..');
/** The server-side files, in the order Apps Script lists them (by name). */
const SERVER_FILES = fs.readdirSync(ROOT).filter((f) => /\.(js|gs)$/.test(f)).sort();

/** A cross-realm value turned into plain Node objects, so deepStrictEqual works. */
function plain(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function makeProperties(initial) {
  const store = Object.assign({}, initial || {});
  return {
    store,
    getProperty: (key) => (Object.prototype.hasOwnProperty.call(store, key) ? store[key] : null),
    setProperty(key, value) {
      store[key] = String(value);
      return this;
    },
    deleteProperty(key) {
      delete store[key];
      return this;
    },
    getKeys: () => Object.keys(store),
  };
}

function makeMenu(ui, title) {
  const menu = {
    title,
    items: [],
    added: false,
    addItem(caption, functionName) {
      menu.items.push({ caption, functionName });
      return menu;
    },
    addSeparator() {
      menu.items.push({ separator: true });
      return menu;
    },
    addSubMenu(sub) {
      menu.items.push({ subMenu: sub.title });
      return menu;
    },
    addToUi() {
      menu.added = true;
      ui.menus.push(menu);
    },
  };
  return menu;
}

function makeUi() {
  const ui = {
    menus: [],
    sidebars: [],
    dialogs: [],
    createMenu: (title) => makeMenu(ui, title),
    createAddonMenu: () => makeMenu(ui, '(add-on)'),
    showSidebar: (html) => ui.sidebars.push(html),
    showModalDialog: (html, title) => ui.dialogs.push({ html, title, modal: true }),
    showModelessDialog: (html, title) => ui.dialogs.push({ html, title, modal: false }),
    alert: () => {},
  };
  return ui;
}

const PageElementType = {
  SHAPE: 'SHAPE', IMAGE: 'IMAGE', TABLE: 'TABLE', LINE: 'LINE', GROUP: 'GROUP',
  VIDEO: 'VIDEO', WORD_ART: 'WORD_ART', SHEETS_CHART: 'SHEETS_CHART', UNSUPPORTED: 'UNSUPPORTED',
};

/** A page element; a SHAPE records setDescription calls. */
function makeElement(type, description) {
  const el = {
    type,
    description: description || '',
    setCalls: [],
    getPageElementType: () => type,
    getDescription: () => el.description,
    setDescription(text) {
      el.setCalls.push(text);
      el.description = text;
      return el;
    },
    asShape() {
      if (type !== 'SHAPE') throw new Error('Object is not of type Shape.');
      return el;
    },
  };
  return el;
}

/** A Selection: `elements` null means no page element is selected. */
function makeSelection(elements) {
  return {
    getSelectionType: () => (elements ? 'PAGE_ELEMENT' : 'NONE'),
    getPageElementRange: () => (elements ? { getPageElements: () => elements.slice() } : null),
  };
}

function makeHtmlOutput(name) {
  const out = {
    name,
    title: null,
    width: null,
    height: null,
    setTitle(t) { out.title = t; return out; },
    setWidth(w) { out.width = w; return out; },
    setHeight(h) { out.height = h; return out; },
    getContent: () => fs.readFileSync(path.join(ROOT, name + '.html'), 'utf8'),
  };
  return out;
}

/**
 * A scripted UrlFetchApp: queue answers with respond(); each is
 * {status, body, headers?} (body: object -> JSON, string -> as is) or {throws: message}.
 * A call with nothing queued fails the test.
 */
function makeUrlFetch() {
  const fake = {
    calls: [],
    queue: [],
    respond(...answers) {
      fake.queue.push(...answers);
      return fake;
    },
    fetch(url, options) {
      fake.calls.push({ url, options: Object.assign({}, options, { headers: Object.assign({}, options && options.headers) }) });
      if (!fake.queue.length) throw new Error('test: unexpected UrlFetchApp.fetch(' + url + ')');
      const answer = fake.queue.shift();
      if (answer.throws) throw new Error(answer.throws);
      const text = typeof answer.body === 'string' ? answer.body : answer.body === undefined ? '' : JSON.stringify(answer.body);
      return {
        getResponseCode: () => answer.status,
        getContentText: () => text,
        getHeaders: () => Object.assign({ 'Content-Type': 'application/json' }, answer.headers),
      };
    },
  };
  return fake;
}

/**
 * Loads the server-side files into a fresh context.
 * @param {{backendUrl?: string|null, presentationId?: string, selection?: any, identityToken?: string}} [opts]
 */
function load(opts) {
  opts = opts || {};
  const ui = makeUi();
  const userProps = makeProperties(opts.backendUrl === null ? {} : { DECKGEN_BACKEND_URL: opts.backendUrl || 'https://deckgen.example.com' });
  const docProps = makeProperties(opts.documentProperties);
  const urlFetch = makeUrlFetch();
  const templates = [];
  const logs = [];
  const state = { selection: opts.selection === undefined ? makeSelection(null) : opts.selection };

  const sandbox = {
    SlidesApp: {
      PageElementType,
      getUi: () => ui,
      getActivePresentation: () => ({
        getId: () => opts.presentationId || 'pres_123',
        getSelection: () => state.selection,
      }),
    },
    UrlFetchApp: urlFetch,
    PropertiesService: {
      getUserProperties: () => userProps,
      getDocumentProperties: () => docProps,
      getScriptProperties: () => makeProperties(),
    },
    ScriptApp: {
      AuthMode: { NONE: 'NONE', LIMITED: 'LIMITED', FULL: 'FULL' },
      getIdentityToken: () => (opts.identityToken === undefined ? 'id-token-abc' : opts.identityToken),
      getOAuthToken: () => 'user-token-xyz',
    },
    HtmlService: {
      createTemplateFromFile(name) {
        const template = {
          fileName: name,
          evaluate() {
            template.evaluated = true;
            return makeHtmlOutput(name);
          },
        };
        templates.push(template);
        return template;
      },
      createHtmlOutputFromFile: (name) => makeHtmlOutput(name),
    },
    Utilities: {
      sleep: () => { throw new Error('test: server code must not sleep (polling is the sidebar\'s job)'); },
      base64Encode: (s) => Buffer.from(String(s)).toString('base64'),
      base64DecodeWebSafe: (s) => Array.from(Buffer.from(String(s), 'base64url')).map((b) => (b > 127 ? b - 256 : b)),
      newBlob: (bytes) => ({ getDataAsString: () => Buffer.from(bytes.map((b) => b & 255)).toString('utf8') }),
    },
    Logger: { log: (...args) => logs.push(['log', ...args]) },
    console: {
      log: (...args) => logs.push(['log', ...args]),
      info: (...args) => logs.push(['info', ...args]),
      warn: (...args) => logs.push(['warn', ...args]),
      error: (...args) => logs.push(['error', ...args]),
    },
  };
  const context = vm.createContext(sandbox);
  for (const file of SERVER_FILES) {
    vm.runInContext(fs.readFileSync(path.join(ROOT, file), 'utf8'), context, { filename: file });
  }
  return {
    gs: context,
    ui,
    userProps,
    docProps,
    urlFetch,
    templates,
    logs,
    select(selection) { state.selection = selection; },
  };
}

module.exports = { ROOT, SERVER_FILES, load, plain, makeElement, makeSelection, PageElementType };
