/**
 * Kubernetes resource quantities (`100m`, `1.5Gi`, `129481064Ki`, `12e6`, `1E`) read exactly.
 *
 * client-node 1.4 has `quantityToScalar`, but it is not exported from the package root and it
 * throws on valid fractional binary quantities (`1.5Gi`, `0.5G`): this parser follows the
 * grammar of apimachinery's `resource.Quantity` instead. Values are computed with BigInt on the
 * decimal digits, so `0.1` CPU is 100 millicores and not 100.00000000000001 rounded up to 101.
 * Like the API server (`Value()`, `MilliValue()`), fractions round up.
 */

/** Longer than any quantity a real API server stores; anything longer is refused unread. */
export const MAX_QUANTITY_LENGTH = 64

// <signedNumber><suffix>, suffix one of binarySI, decimalSI or a decimal exponent.
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$/

const BINARY_POWERS: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 }
const DECIMAL_POWERS: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 }

// Far beyond anything that fits int64 (where apimachinery keeps quantities) either way; bounding it
// keeps the BigInt powers small whatever a hostile object says.
const MAX_DECIMAL_EXPONENT = 50

export type QuantityResult = { ok: true; value: number } | { ok: false; reason: string }

/**
 * `text` scaled by `unitsPerOne` (1 for bytes or devices, 1000 for millicores), rounded up.
 * Never throws: a malformed, negative or out-of-range quantity is `ok: false` with the reason.
 */
export function parseQuantity(text: unknown, unitsPerOne = 1): QuantityResult {
  if (typeof text === 'number') {
    // client-node types say string, but a hand-built object may carry a number.
    if (!Number.isFinite(text) || text < 0) return { ok: false, reason: 'not a non-negative number' }
    return { ok: true, value: Math.ceil(text * unitsPerOne) }
  }
  if (typeof text !== 'string') return { ok: false, reason: 'not a string' }
  if (text.length === 0 || text.length > MAX_QUANTITY_LENGTH) return { ok: false, reason: 'empty or too long' }
  const match = QUANTITY.exec(text)
  if (!match) return { ok: false, reason: 'not a Kubernetes quantity' }
  const [, sign, number, suffix = ''] = match as unknown as [string, string, string, string | undefined]

  const [whole = '', fraction = ''] = number.split('.')
  let digits = BigInt(`${whole}${fraction}` || '0')
  if (sign === '-' && digits !== 0n) return { ok: false, reason: 'negative' }
  let exp10 = -fraction.length
  let exp2 = 0
  if (suffix in BINARY_POWERS) exp2 = BINARY_POWERS[suffix]!
  else if (suffix in DECIMAL_POWERS) exp10 += DECIMAL_POWERS[suffix]!
  else exp10 += Number(suffix.slice(1))
  if (Math.abs(exp10) > MAX_DECIMAL_EXPONENT) return { ok: false, reason: 'exponent out of range' }

  digits *= BigInt(unitsPerOne) * (1n << BigInt(exp2))
  let scaled: bigint
  if (exp10 >= 0) scaled = digits * 10n ** BigInt(exp10)
  else {
    const divisor = 10n ** BigInt(-exp10)
    scaled = (digits + divisor - 1n) / divisor
  }
  if (scaled > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'out of range' }
  return { ok: true, value: Number(scaled) }
}
