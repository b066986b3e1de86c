#!/usr/bin/env node
/**
 * Derives netlink/vhsm-uapi.ts from kernel/uapi/vhsm.h: every #define and
 * every enum member becomes an exported constant, and each enum also an
 * object (name -> value) for reverse lookups.
 *
 * The parser accepts only what the header uses: an include guard,
 * `#define NAME <integer | "string">`, and `enum name { A, B = <expr>, };`
 * where <expr> adds and subtracts integers and names defined above. Anything
 * else stops it with the line it could not read.
 *
 *   node scripts/gen-uapi.mjs            write netlink/vhsm-uapi.ts
 *   node scripts/gen-uapi.mjs --stdout   print it instead
 *   node scripts/gen-uapi.mjs --check    exit 1 if the file is out of date
 *   --header PATH                        read another header (tests)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_HEADER = join(ROOT, 'kernel', 'uapi', 'vhsm.h');
const OUTPUT = join(ROOT, 'netlink', 'vhsm-uapi.ts');

class HeaderError extends Error {}

function fail(line, message) {
  throw new HeaderError(`line ${line}: ${message}`);
}

/** Blanks out comments, keeping line numbers. */
function stripComments(text) {
  let out = '';
  for (let i = 0; i < text.length; ) {
    if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) fail(text.slice(0, i).split('\n').length, 'unterminated comment');
      out += text.slice(i, end + 2).replace(/[^\n]/g, ' ');
      i = end + 2;
    } else if (text.startsWith('//', i)) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end;
    } else if (text[i] === '"') {
      const m = /^"(?:[^"\\\n]|\\.)*"/.exec(text.slice(i));
      if (!m) fail(text.slice(0, i).split('\n').length, 'unterminated string');
      out += m[0];
      i += m[0].length;
    } else {
      out += text[i++];
    }
  }
  return out;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function parseInteger(token) {
  if (/^0[xX][0-9a-fA-F]+$/.test(token) || /^(0|[1-9][0-9]*)$/.test(token)) return Number(token);
  return undefined;
}

/** A C string literal with only the escapes JSON shares with C. */
function parseString(literal, line) {
  try {
    return JSON.parse(literal);
  } catch {
    fail(line, `string ${literal} has escapes this parser does not read`);
  }
}

/** Evaluates `a + b - (c - 1)` over integers and known names. */
function evaluate(expr, known, line) {
  const tokens = expr.match(/0[xX][0-9a-fA-F]+|[0-9]+|[A-Za-z_][A-Za-z0-9_]*|[-+()]|\S/g) ?? [];
  let pos = 0;
  const primary = () => {
    const tok = tokens[pos++];
    if (tok === undefined) fail(line, `incomplete expression "${expr}"`);
    if (tok === '(') {
      const v = sum();
      if (tokens[pos++] !== ')') fail(line, `missing ")" in "${expr}"`);
      return v;
    }
    const n = parseInteger(tok);
    if (n !== undefined) return n;
    if (IDENT.test(tok)) {
      if (!known.has(tok)) fail(line, `unknown name ${tok} in "${expr}"`);
      return known.get(tok);
    }
    fail(line, `cannot read "${tok}" in "${expr}"`);
  };
  const sum = () => {
    let v = primary();
    while (tokens[pos] === '+' || tokens[pos] === '-') {
      const op = tokens[pos++];
      const r = primary();
      v = op === '+' ? v + r : v - r;
    }
    return v;
  };
  const value = sum();
  if (pos !== tokens.length) fail(line, `unexpected "${tokens[pos]}" in "${expr}"`);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > 0x7fffffff) {
    fail(line, `value of "${expr}" is not an integer from 0 to 2^31-1`);
  }
  return value;
}

/**
 * Parses the header into { defines: [{name, value}], enums: [{name, members: [{name, value}]}] }.
 */
export function parseHeader(text) {
  const lines = stripComments(text).split('\n');
  const defines = [];
  const enums = [];
  const known = new Map();
  const declare = (name, value, line) => {
    if (known.has(name)) fail(line, `${name} defined twice`);
    known.set(name, value);
  };

  // Preprocessor lines first: only an include guard and plain #defines.
  let guard;
  let guardClosed = false;
  const body = [];
  lines.forEach((raw, index) => {
    const line = index + 1;
    const text = raw.trim();
    if (!text.startsWith('#')) {
      if (guardClosed && text !== '') fail(line, 'text after the closing #endif');
      body.push({ line, text: raw });
      return;
    }
    let m;
    if ((m = /^#\s*ifndef\s+([A-Za-z_]\w*)$/.exec(text))) {
      if (guard !== undefined) fail(line, 'only one #ifndef (the include guard) is understood');
      guard = { name: m[1], defined: false };
    } else if ((m = /^#\s*define\s+([A-Za-z_]\w*)$/.exec(text))) {
      if (!guard || guard.name !== m[1] || guard.defined) fail(line, `#define ${m[1]} without a value is only understood as the include guard`);
      guard.defined = true;
    } else if ((m = /^#\s*define\s+([A-Za-z_]\w*)\s+(.+)$/.exec(text))) {
      const [, name, valueText] = m;
      if (valueText.includes('(') && /^[A-Za-z_]\w*\(/.test(valueText)) fail(line, `function-like macro ${name} is not understood`);
      const value = /^"(?:[^"\\]|\\.)*"$/.test(valueText) ? parseString(valueText, line) : parseInteger(valueText);
      if (value === undefined) fail(line, `#define ${name}: value "${valueText}" is neither an integer nor a string literal`);
      declare(name, value, line);
      defines.push({ name, value });
    } else if (/^#\s*endif$/.test(text)) {
      if (!guard?.defined || guardClosed) fail(line, 'unexpected #endif');
      guardClosed = true;
    } else {
      fail(line, `preprocessor line not understood: ${text}`);
    }
  });
  if (guard && !guardClosed) fail(lines.length, 'include guard never closed');

  // The rest must be enum declarations. Preprocessor lines are blanked so
  // that offsets still map to line numbers.
  const code = lines.map((raw) => (raw.trim().startsWith('#') ? '' : raw)).join('\n');
  const lineOf = (offset) => code.slice(0, offset).split('\n').length;
  const space = /\s*/y;
  const enumDecl = /enum\s+([A-Za-z_]\w*)\s*\{([^}]*)\}\s*;/y;
  let pos = 0;
  for (;;) {
    space.lastIndex = pos;
    space.exec(code);
    pos = space.lastIndex;
    if (pos >= code.length) break;
    enumDecl.lastIndex = pos;
    const m = enumDecl.exec(code);
    if (!m) fail(lineOf(pos), `expected "enum name { ... };", found "${code.slice(pos).split('\n')[0].trim()}"`);
    const [whole, enumName, inner] = m;
    const members = [];
    let next = 0;
    let itemOffset = pos + whole.indexOf('{') + 1;
    const items = inner.split(',');
    items.forEach((item, i) => {
      const itemText = item.trim();
      const line = lineOf(itemOffset + (item.length - item.trimStart().length));
      itemOffset += item.length + 1;
      if (itemText === '') {
        if (i === items.length - 1 && i > 0) return; // trailing comma
        fail(line, `empty member in enum ${enumName}`);
      }
      const mm = /^([A-Za-z_]\w*)\s*(?:=\s*([\s\S]+))?$/.exec(itemText);
      if (!mm) fail(line, `enum ${enumName}: member "${itemText}" not understood`);
      const value = mm[2] === undefined ? next : evaluate(mm[2].replace(/\s+/g, ' ').trim(), known, line);
      declare(mm[1], value, line);
      members.push({ name: mm[1], value });
      next = value + 1;
    });
    enums.push({ name: enumName, members });
    pos = enumDecl.lastIndex;
  }
  if (defines.length === 0 && enums.length === 0) fail(1, 'no #define and no enum found');
  return { defines, enums };
}

/** The TypeScript module for a parsed header. */
export function renderTs(parsed, headerPath) {
  const out = [
    `// generated by scripts/gen-uapi.mjs from ${headerPath}, do not edit.`,
    '// Regenerate with `node scripts/gen-uapi.mjs` (npm run build:ts does).',
    '',
  ];
  for (const { name, value } of parsed.defines) out.push(`export const ${name} = ${JSON.stringify(value)};`);
  for (const e of parsed.enums) {
    out.push('', `// enum ${e.name}`);
    for (const { name, value } of e.members) out.push(`export const ${name} = ${value};`);
    out.push(`export const ${e.name} = {`);
    for (const { name, value } of e.members) out.push(`  ${name}: ${value},`);
    out.push('} as const;');
  }
  out.push('');
  return out.join('\n');
}

function main(argv) {
  const headerIndex = argv.indexOf('--header');
  const header = headerIndex >= 0 ? argv[headerIndex + 1] : DEFAULT_HEADER;
  if (!header) throw new HeaderError('--header needs a path');
  const headerName = relative(ROOT, header).split('\\').join('/');
  const ts = renderTs(parseHeader(readFileSync(header, 'utf8')), headerName);
  if (argv.includes('--stdout')) {
    process.stdout.write(ts);
  } else if (argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(OUTPUT, 'utf8');
    } catch {
      // missing counts as out of date
    }
    if (current !== ts) {
      process.stderr.write(`gen-uapi: ${relative(ROOT, OUTPUT)} is out of date; run node scripts/gen-uapi.mjs\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(OUTPUT, ts);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    main(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof HeaderError)) throw error;
    process.stderr.write(`gen-uapi: ${error.message}\n`);
    process.exit(1);
  }
}
