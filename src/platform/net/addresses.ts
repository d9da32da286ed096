import dns, { type LookupAddress, type LookupOptions } from 'node:dns'
import { BlockList, isIP, type LookupFunction } from 'node:net'

/**
 * A predicate over IP addresses for the denied CIDRs (`169.254.0.0/16`, `fd00:ec2::254/128`, or a
 * bare address). IPv4-mapped IPv6 addresses (`::ffff:169.254.169.254`) match the IPv4 ranges.
 * A malformed CIDR is a configuration error and throws here, at start-up.
 */
export function addressDenier(cidrs: readonly string[]): (address: string) => boolean {
  const list = new BlockList()
  for (const cidr of cidrs) {
    const [address = '', bits] = cidr.trim().split('/')
    const family = isIP(address)
    if (family === 0) throw new Error(`not a CIDR: ${cidr}`)
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) {
      list.addAddress(address, type)
      continue
    }
    const prefix = Number(bits)
    if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) throw new Error(`not a CIDR: ${cidr}`)
    list.addSubnet(address, prefix, type)
  }
  return (address) => {
    const family = isIP(address)
    return family !== 0 && list.check(address, family === 4 ? 'ipv4' : 'ipv6')
  }
}

/** Raised from a connection's lookup when a name resolves into a denied range. */
export class AddressRefusedError extends Error {
  readonly code = 'ERR_ADDRESS_REFUSED'
  constructor(host: string, address: string) {
    super(`${host} resolves to ${address}, an address in a denied network range`)
    this.name = 'AddressRefusedError'
  }
}

/**
 * A `lookup` for http(s) agents that resolves the name and refuses the connection when any answer
 * is denied: the check is on the address actually dialled, so a name re-pointed after it was
 * registered (DNS rebinding) is still refused.
 */
export function guardedLookup(cidrs: readonly string[]): LookupFunction {
  const denied = addressDenier(cidrs)
  return (hostname, options, callback) => {
    const opts: LookupOptions = { ...(options as LookupOptions), all: true }
    dns.lookup(hostname, opts, (err, answers) => {
      if (err) return callback(err, '', 0)
      const list = answers as unknown as LookupAddress[]
      const bad = list.find((a) => denied(a.address))
      if (bad) return callback(new AddressRefusedError(hostname, bad.address), '', 0)
      if ((options as LookupOptions).all) {
        return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list)
      }
      const first = list[0]
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0)
      callback(null, first.address, first.family)
    })
  }
}
