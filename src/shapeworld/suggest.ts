/**
 * "Did you mean": the known words nearest an unknown one — a word people use for a ShapeWorld class or colour
 * (cube → square, grey → gray, violet → purple), else the known words within two edits.
 */
const SYNONYMS: Readonly<Record<string, string>> = {
  cube: 'square', box: 'square', rectangle: 'square', block: 'square', tile: 'square',
  ball: 'circle', sphere: 'circle', dot: 'circle', disc: 'circle', disk: 'circle', ring: 'circle', oval: 'circle',
  pyramid: 'triangle', cone: 'triangle', rhombus: 'diamond', lozenge: 'diamond', plus: 'cross', x: 'cross',
  grey: 'gray', violet: 'purple', magenta: 'pink', crimson: 'red', scarlet: 'red', navy: 'blue', cyan: 'blue',
  gold: 'yellow', golden: 'yellow', tan: 'brown', beige: 'brown', lime: 'green',
};

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** Up to three known words for `word`, nearest first; the synonym's target only when it is known. */
export function nearestWords(word: string, known: readonly string[]): string[] {
  const w = word.toLowerCase();
  const syn = SYNONYMS[w];
  const set = new Set(known);
  if (syn) {
    // a singular synonym's target names the plural for a plural word (cubes → squares) when that is known
    return [syn, `${syn}s`, `${syn}es`].filter((x) => set.has(x)).slice(0, 1);
  }
  if (w.endsWith('s') && SYNONYMS[w.slice(0, -1)]) return nearestWords(w.slice(0, -1), known).map((x) => (set.has(`${x}s`) ? `${x}s` : x));
  return known
    .filter((k) => k.length >= 3) // 'cat' is not 'at'
    .map((k) => ({ k, d: distance(w, k) }))
    .filter(({ d }) => d <= (w.length <= 4 ? 1 : 2))
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k))
    .slice(0, 3)
    .map(({ k }) => k);
}

/** `'cube' (did you mean 'square'?)`, or just `'cube'`. */
export function unknownWord(word: string, known: readonly string[]): string {
  const near = nearestWords(word, known);
  return near.length ? `'${word}' (did you mean ${near.map((n) => `'${n}'`).join(' or ')}?)` : `'${word}'`;
}
