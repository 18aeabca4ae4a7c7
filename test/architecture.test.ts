/**
 * The shape of src/, read from its source: imports run from a higher layer to a lower one only (type-only imports
 * and re-exports included: they tie the lower layer's meaning to the higher one all the same), and no function is
 * longer than 100 lines (issue 14).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/**
 * Low to high; a file may import from its own layer and the layers below it. The areas are src/'s folders, and
 * `run` (src/run.ts, the run facade) and `index` (src/index.ts, the library's exports). Issue 14's order is
 * core ← roles/store ← search/backends ← config ← run ← eval/server/cli; the other areas are placed where their
 * imports put them: ShapeWorld (drawn by the procedural and embedded backends) and the report (written by the run)
 * above the store they write to, the queue, the web view and the dataset builders beside eval and the server, and
 * the entry points (the CLI, the benches, the library's index) above everything they start.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['roles', 'store'],
  ['shapeworld', 'report'],
  ['search', 'backends'],
  ['config'],
  ['run'],
  ['eval', 'server', 'queue', 'ui', 'datasets'],
  ['cli', 'bench', 'index'],
];

const layerOf = new Map(LAYERS.flatMap((areas, layer) => areas.map((area) => [area, layer] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return entry.name.endsWith('.ts') ? [file] : [];
  });
}

/** `core` for src/core/…, `run` for src/run.ts. */
function areaOf(file: string): string {
  const [first, ...rest] = path.relative(SRC, file).split(path.sep);
  return rest.length > 0 ? first! : first!.replace(/\.[cm]?[jt]s$/, '');
}

function parse(file: string, text = readFileSync(file, 'utf8')): ts.SourceFile {
  return ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
}

/**
 * Every module a source file names: imports (type-only too), re-exports, `import x = require(…)`, dynamic
 * `import(…)` and `import('…').T` in types. With its line.
 */
function moduleReferences(source: ts.SourceFile): Array<{ specifier: string; line: number }> {
  const found: Array<{ specifier: string; line: number }> = [];
  const add = (node: ts.Node, specifier: ts.Node | undefined) => {
    if (specifier && ts.isStringLiteralLike(specifier)) {
      found.push({ specifier: specifier.text, line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1 });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node, node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node, node.moduleReference.expression);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node, node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node, node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** Imports from a lower layer to a higher one, as `from:line → to (layer → layer)`. */
function upwardImports(files: readonly string[]): string[] {
  const upward: string[] = [];
  for (const file of files) {
    const from = areaOf(file);
    for (const { specifier, line } of moduleReferences(parse(file))) {
      if (!specifier.startsWith('.')) continue; // packages and node: builtins
      const target = path.resolve(path.dirname(file), specifier);
      const to = areaOf(target);
      if (to === from) continue;
      if (layerOf.get(to)! > layerOf.get(from)!) {
        upward.push(`${path.relative(SRC, file)}:${line} → ${specifier} (${from}, layer ${layerOf.get(from)} → ${to}, layer ${layerOf.get(to)})`);
      }
    }
  }
  return upward;
}

/** Functions (with a body) over `limit` lines, signature to closing brace; a nested function counts in the one around it. */
function longFunctions(files: readonly string[], limit: number): string[] {
  const long: string[] = [];
  for (const file of files) {
    const source = parse(file);
    const lineOf = (pos: number) => source.getLineAndCharacterOfPosition(pos).line;
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const lines = lineOf(node.end) - lineOf(node.getStart(source)) + 1;
        if (lines > limit) long.push(`${path.relative(SRC, file)}:${lineOf(node.getStart(source)) + 1} ${nameOf(node, source)} (${lines} lines)`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return long;
}

function nameOf(node: ts.SignatureDeclaration, source: ts.SourceFile): string {
  if (node.name) return node.name.getText(source);
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) return parent.name.getText(source);
  return '(anonymous)';
}

const files = sourceFiles(SRC);

describe('architecture', () => {
  it('finds the module references of every kind of import', () => {
    const source = parse(
      'x.ts',
      [
        "import type { A } from './a.js';",
        "import { type B } from './b.js';",
        "export type { C } from './c.js';",
        "export * from './d.js';",
        "const e = () => import('./e.js');",
        "type F = import('./f.js').F;",
        "import g = require('./g.js');",
      ].join('\n'),
    );
    expect(moduleReferences(source).map((r) => `${r.line} ${r.specifier}`)).toEqual(['1 ./a.js', '2 ./b.js', '3 ./c.js', '4 ./d.js', '5 ./e.js', '6 ./f.js', '7 ./g.js']);
  });

  it('places every area of src/ in a layer', () => {
    const areas = [...new Set(files.map(areaOf))].sort();
    expect(areas.filter((area) => !layerOf.has(area))).toEqual([]);
  });

  it('imports only from its own layer or lower ones (type-only imports and re-exports included)', () => {
    expect(upwardImports(files)).toEqual([]);
  });

  it('has no function over 100 lines', () => {
    expect(longFunctions(files, 100)).toEqual([]);
  });
});
