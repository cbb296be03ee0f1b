/**
 * The key a client address is limited by: IPv4 (also IPv4-mapped IPv6) as the address itself, IPv6 by
 * its /64 prefix (one subscriber usually holds a whole /64, so per-address limits on IPv6 would be
 * trivially evaded).
 */
import { isIPv6 } from 'node:net'

export function clientKey(remote: string | undefined): string {
  if (remote === undefined) return 'unknown'
  if (remote.startsWith('::ffff:') && remote.includes('.')) return remote.slice(7)
  if (!isIPv6(remote)) return remote
  const halves = remote.split('::')
  const head = halves[0] === '' ? [] : halves[0]!.split(':')
  const tail = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : []
  const groups = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail] : head
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '').toLowerCase()).join(':')}::/64`
}
