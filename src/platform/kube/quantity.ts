// client-node 1.4 keeps its quantity parser out of its public exports (and it rejects fractions
// with a binary suffix such as "1.5Gi"), so the rules of Kubernetes' resource.Quantity are here.
const SUFFIXES: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
}

const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE]([+-]?\d+))?$/

/**
 * The value of a Kubernetes quantity ("500m" → 0.5, "80Gi" → 85899345920, "1e3" → 1000) as a
 * number: exact for the counts and byte sizes nodes report. Throws on anything else.
 */
export function parseQuantity(text: string): number {
  const match = text.length <= 64 ? QUANTITY.exec(text.trim()) : null
  if (!match) throw new Error(`not a Kubernetes quantity: ${text.slice(0, 64)}`)
  const [, number, suffix = '', exponent] = match
  const base = Number(number)
  if (exponent !== undefined) return base * 10 ** Number(exponent)
  const scale = SUFFIXES[suffix]!
  // Divide for the small suffixes so that "100m" is 0.1 and not 0.1000…01.
  return scale < 1 ? base / Math.round(1 / scale) : base * scale
}
