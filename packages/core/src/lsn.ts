/** Postgres LSNs (`16/B374D848`) as bigints, for comparisons and byte distances. */
export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  if (hi === undefined || lo === undefined) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

export function bigIntToLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

/**
 * The two 32-bit halves of an LSN as numbers. Without BigInt: the CDC compares and
 * normalizes an LSN for every commit it decodes, and each half fits a double exactly.
 */
function halves(lsn: string): [number, number] {
  const match = LSN.exec(lsn);
  if (!match) throw new Error(`not an LSN: ${lsn}`);
  return [Number.parseInt(match[1] as string, 16), Number.parseInt(match[2] as string, 16)];
}

/** Two halves of up to 8 hex digits each (leading zeros allowed, as pgoutput pads them). */
const LSN = /^0*([0-9A-Fa-f]{1,8})\/0*([0-9A-Fa-f]{1,8})$/;

export function compareLsn(a: string, b: string): number {
  if (a === b) return 0;
  const [ah, al] = halves(a);
  const [bh, bl] = halves(b);
  if (ah !== bh) return ah < bh ? -1 : 1;
  return al < bl ? -1 : al > bl ? 1 : 0;
}

/**
 * An LSN as Postgres prints it (`0/1982E00`: upper-case hex, no leading zeros), one spelling
 * per position; pgoutput pads them (`00000000/01982E00`).
 */
export function normalizeLsn(lsn: string): string {
  const [hi, lo] = halves(lsn);
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}
