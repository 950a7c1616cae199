/** One sample of a Prometheus text exposition: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    if (raw.startsWith('#') || raw.trim() === '') continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(label)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return parseMetrics(await res.text());
}

const matching = (samples: Sample[], name: string, where: Record<string, string>) =>
  samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));

/**
 * Sum of a metric's samples whose labels include `where`; 0 when there is none, which suits
 * a "before" reading of a labelled counter that has not been incremented yet. To assert a
 * value, use `value()`: a sum over nothing cannot tell a missing series from a zero.
 */
export function sum(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return matching(samples, name, where).reduce((total, s) => total + s.value, 0);
}

/** The value of the one series `name{where}`; throws when it is missing or ambiguous. */
export function value(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  const found = matching(samples, name, where);
  if (found.length !== 1) {
    const seen = samples.filter((s) => s.name === name).map((s) => JSON.stringify(s.labels));
    throw new Error(
      `expected one series ${name}${JSON.stringify(where)}, found ${found.length} (series of that name: ${seen.join(', ') || 'none'})`,
    );
  }
  const v = found[0]!.value;
  if (Number.isNaN(v)) throw new Error(`${name}${JSON.stringify(where)} is NaN`);
  return v;
}

export function has(samples: Sample[], name: string): boolean {
  return samples.some((s) => s.name === name);
}
