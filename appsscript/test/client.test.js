'use strict';
// Checks that tie the HTML files, the server-side .js files and the manifest together, and
// type-checks the browser code of the sidebar and dialogs with tsc.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { ROOT, SERVER_FILES, load } = require('./fakes');

const read = (name) => fs.readFileSync(path.join(ROOT, name), 'utf8');
const htmlFiles = fs.readdirSync(ROOT).filter((f) => f.endsWith('.html'));
const code = SERVER_FILES.map(read).join('\n');

/** Text of each plain <script> element (not JSON, not src=) of an HTML file. */
function scriptsOf(html) {
  const out = [];
  const re = /<script(\s[^>]*)?>([\s\S]*?)<\/script>/gi;
  let m;
  while ((m = re.exec(html))) {
    const attrs = m[1] || '';
    if (/\btype\s*=\s*["']application\/json["']/i.test(attrs) || /\bsrc\s*=/i.test(attrs)) continue;
    out.push(m[2]);
  }
  return out;
}

/**
 * The server function each `google.script.run.with…(…).name(…)` chain calls:
 * walk the chain, skipping the with* calls by balanced parentheses.
 */
function serverCallsIn(js) {
  const names = [];
  let at = js.indexOf('google.script.run');
  while (at !== -1) {
    let i = at + 'google.script.run'.length;
    for (;;) {
      const m = /^\s*\.\s*([A-Za-z_$][\w$]*)\s*\(/.exec(js.slice(i));
      if (!m) break;
      i += m[0].length;
      for (let depth = 1; depth > 0 && i < js.length; i++) {
        if (js[i] === '(') depth++;
        else if (js[i] === ')') depth--;
      }
      if (!/^with(SuccessHandler|FailureHandler|UserObject)$/.test(m[1])) {
        names.push(m[1]);
        break;
      }
    }
    at = js.indexOf('google.script.run', at + 1);
  }
  return names;
}

test('every google.script.run call names a public server-side function', () => {
  const env = load();
  const called = new Set();
  for (const file of htmlFiles) {
    for (const js of scriptsOf(read(file))) {
      const count = (js.match(/google\.script\.run/g) || []).length;
      const names = serverCallsIn(js);
      assert.equal(names.length, count, file + ': every google.script.run chain ends in a server call');
      names.forEach((n) => called.add(n));
    }
  }
  assert.deepEqual([...called].sort(), ['cancelJob', 'lookUpOpportunity', 'markSelectedAsSection', 'pollJob', 'saveSettings', 'startJob']);
  for (const name of called) {
    assert.equal(typeof env.gs[name], 'function', name + ' is defined in a server-side file');
    assert.ok(!name.endsWith('_'), name + ' must not end with _ (private functions cannot be called from the client)');
  }
});

test('every template and include names an HTML file that exists', () => {
  const names = new Set();
  for (const src of [code, ...htmlFiles.map(read)]) {
    for (const m of src.matchAll(/(?:include|createTemplateFromFile|createHtmlOutputFromFile)\(\s*'([^']+)'\s*\)/g)) names.add(m[1]);
  }
  assert.ok(names.has('Sidebar') && names.has('Dialog') && names.has('SidebarJs') && names.has('DialogJs'), [...names].join(', '));
  for (const name of names) {
    assert.ok(fs.existsSync(path.join(ROOT, name + '.html')), name + '.html exists');
  }
});

test('the included JS and CSS files hold no scriptlets (include() does not evaluate them)', () => {
  for (const file of ['SidebarJs.html', 'DialogJs.html', 'Styles.html']) {
    assert.doesNotMatch(read(file), /<\?/, file);
  }
});

test('pages use the add-on stylesheet and label every text field', () => {
  for (const file of ['Sidebar.html', 'Dialog.html']) {
    const html = read(file);
    assert.match(html, /href="https:\/\/ssl\.gstatic\.com\/docs\/script\/css\/add-ons1\.css"/, file);
    assert.match(html, /role="alert"/, file + ' announces errors');
    const fields = [...html.matchAll(/<(input|textarea|select)\b([^>]*)>/g)];
    for (const [tag, , attrs] of fields) {
      const type = (/\btype="([^"]+)"/.exec(attrs) || [])[1] || 'text';
      const id = (/\bid="([^"]+)"/.exec(attrs) || [])[1];
      if (type === 'radio' || type === 'checkbox') {
        // Wrapped in a <label class="check">…</label>.
        const at = html.indexOf(tag);
        assert.match(html.slice(Math.max(0, at - 40), at), /<label[^>]*>\s*$/, file + ': ' + tag + ' is inside its label');
      } else {
        assert.ok(id, file + ': ' + tag + ' has an id');
        assert.match(html, new RegExp('<label[^>]*\\bfor="' + id + '"'), file + ': #' + id + ' has a <label for>');
      }
    }
  }
});

test('the manifest asks for exactly the scopes the README explains', () => {
  const manifest = JSON.parse(read('appsscript.json'));
  assert.equal(manifest.runtimeVersion, 'V8');
  assert.deepEqual([...manifest.oauthScopes].sort(), [
    'https://www.googleapis.com/auth/presentations',
    'https://www.googleapis.com/auth/script.container.ui',
    'https://www.googleapis.com/auth/script.external_request',
    'https://www.googleapis.com/auth/userinfo.email',
    'openid',
  ]);
  const readme = read('README.md');
  for (const scope of manifest.oauthScopes) {
    assert.ok(readme.includes('`' + scope + '`'), 'README explains ' + scope);
  }
});

test('clasp pushes only the manifest, the server-side .js files and the HTML files', () => {
  const ignore = read('.claspignore');
  for (const pattern of ['node_modules/**', 'test/**', 'package.json', 'package-lock.json', 'tsconfig.json']) {
    assert.ok(ignore.split('\n').some((l) => l.trim() === pattern || l.trim() === '**/' + pattern), '.claspignore has ' + pattern);
  }
  const pushable = fs.readdirSync(ROOT).filter((f) => /\.(js|gs|html)$/.test(f));
  assert.deepEqual(
    pushable.filter((f) => f.endsWith('.js') || f.endsWith('.gs')),
    ['Backend.js', 'Crm.js', 'Jobs.js', 'Menu.js', 'Sections.js', 'Selection.js', 'Server.js', 'Settings.js', 'Text.js'],
    'the server-side files, one per concern (and Sections.js, generated from prompts/sections.yaml)',
  );
  // Apps Script names a file without its extension: Menu.js and Menu.html could not both exist.
  const names = pushable.map((f) => f.replace(/\.(js|gs|html)$/, ''));
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'no .js and .html file share a name');
  // clasp pushes no JSON but the manifest, so the section list must be a .js file.
  assert.deepEqual(fs.readdirSync(ROOT).filter((f) => f.endsWith('.json') && !/^(appsscript|package|package-lock|tsconfig)\.json$/.test(f)), []);
});

test('the sidebar and dialog browser code type-checks (tsc, DOM + google.script types)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deckgen-client-'));
  try {
    const files = [];
    for (const file of ['SidebarJs.html', 'DialogJs.html']) {
      const scripts = scriptsOf(read(file));
      assert.equal(scripts.length, 1, file + ' has one <script>');
      // Keep line numbers: the <script> tag sits on line 1.
      const out = path.join(dir, file.replace('.html', '.js'));
      fs.writeFileSync(out, '\n' + scripts[0].replace(/^\n/, ''));
      files.push(path.basename(out));
    }
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2019',
          lib: ['es2019', 'dom'],
          allowJs: true,
          checkJs: true,
          noEmit: true,
          strict: true,
          skipLibCheck: true,
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
          types: ['google.script.client-side'],
        },
        files,
      }),
    );
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      execFileSync(process.execPath, [tsc, '-p', dir], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      assert.fail('tsc found errors in the browser code:\n' + (err.stdout || '') + (err.stderr || ''));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
