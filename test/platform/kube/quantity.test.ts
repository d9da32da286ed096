import { describe, expect, it } from 'vitest'
import { parseQuantity } from '../../../src/platform/kube/index.js'

describe('parseQuantity', () => {
  it.each([
    ['8', 8],
    ['500m', 0.5],
    ['100m', 0.1],
    ['250n', 2.5e-7],
    ['1.5', 1.5],
    ['80Gi', 80 * 2 ** 30],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['2063564Ki', 2063564 * 1024],
    ['128M', 128e6],
    ['1e3', 1000],
    ['12E', 12e18],
    ['.5', 0.5],
  ])('%s is %d', (text, value) => {
    expect(parseQuantity(text)).toBe(value)
  })

  it.each(['', 'Gi', '1.5.2', '10 Gi', '5X', '1e', 'NaN', '1'.repeat(100)])('refuses %j', (text) => {
    expect(() => parseQuantity(text)).toThrow(/quantity/)
  })
})
