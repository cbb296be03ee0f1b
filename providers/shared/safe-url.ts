/**
 * SSRF protection for provider URLs that arrive through the admin API (OWASP API7).
 *
 * - `checkProviderUrl(url, policy)`: config-time check. https only (unless `allowHttp`), no userinfo,
 *   no fragment, no control characters; the host must not be, nor resolve to, a private, loopback,
 *   link-local, CGNAT, unspecified, multicast, reserved or cloud-metadata address, unless the
 *   operator allowlist permits it. Returns the reasons (empty: accepted).
 * - `guardedConnect(policy, opts)`: an undici connector that checks again at connect time, on the
 *   addresses the connection really uses (DNS rebinding: public when validated, private when used).
 *
 * IPv4 written as decimal, octal or hex (`2130706433`, `0x7f000001`, `0177.0.0.1`) is normalised by
 * the WHATWG URL parser before the check; IPv4 embedded in IPv6 (mapped `::ffff:a.b.c.d`, compatible
 * `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is checked as the IPv4 address it carries.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import { isIP, type Socket } from 'node:net'
import { buildConnector } from 'undici'
import { GatewayError } from '../../gateway/errors.ts'

export interface ResolvedAddress {
  readonly address: string
  readonly family: number
}

/** Resolves a host name to every address (like `dns.lookup(host, {all: true})`). */
export type ResolveAll = (hostname: string) => Promise<readonly ResolvedAddress[]>

export interface ProviderUrlPolicy {
  /**
   * Accept a host that does not resolve now (DNS down, or a name that exists only where the gateway
   * runs); its addresses are then judged at connect time by `guardedConnect`. Default false.
   */
  readonly allowUnresolvable?: boolean
  /** Accept `http:` URLs (default false: `https:` only). */
  readonly allowHttp?: boolean
  /**
   * Operator allowlist: host names (`ollama.internal`, `*.svc.cluster.local`), IP addresses or CIDRs
   * (`10.0.0.0/8`, `fd00::/8`). A host allowed by name may resolve to private addresses, but never to a
   * cloud-metadata address unless that address is allowed by address or CIDR.
   */
  readonly allowlist?: readonly string[]
  /** DNS resolution (default: `dns.lookup` with `all: true`); replaceable in tests. */
  readonly resolve?: ResolveAll
}

// ---- address ranges ------------------------------------------------------------------------------

interface Range {
  readonly v6: boolean
  readonly base: bigint
  readonly bits: number
}

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.')
  if (parts.length !== 4) return undefined
  let n = 0n
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined
    const v = Number(p)
    if (v > 255) return undefined
    n = (n << 8n) | BigInt(v)
  }
  return n
}

function parseV6(input: string): bigint | undefined {
  let s = input
  const zone = s.indexOf('%')
  if (zone !== -1) s = s.slice(0, zone)
  const lastColon = s.lastIndexOf(':')
  if (s.includes('.', lastColon)) {
    // A trailing dotted quad (::ffff:1.2.3.4) becomes its two hex groups.
    const v4 = parseV4(s.slice(lastColon + 1))
    if (v4 === undefined) return undefined
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`
  }
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const group = (h: string): bigint[] | undefined => {
    if (h === '') return []
    const out: bigint[] = []
    for (const g of h.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined
      out.push(BigInt(`0x${g}`))
    }
    return out
  }
  const head = group(halves[0]!)
  const rest = halves.length === 2 ? group(halves[1]!) : []
  if (!head || !rest) return undefined
  const given = head.length + rest.length
  if (halves.length === 1 ? given !== 8 : given > 7) return undefined
  let n = 0n
  for (const g of [...head, ...Array<bigint>(8 - given).fill(0n), ...rest]) n = (n << 16n) | g
  return n
}

/** An IP address as a number and its family, or undefined when `s` is not an IP literal. */
export function parseAddress(s: string): { v6: boolean; n: bigint } | undefined {
  const h = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s
  const fam = isIP(h)
  if (fam === 4) { const n = parseV4(h); return n === undefined ? undefined : { v6: false, n } }
  if (fam === 6) { const n = parseV6(h); return n === undefined ? undefined : { v6: true, n } }
  return undefined
}

function parseRange(cidr: string): Range | undefined {
  const slash = cidr.indexOf('/')
  const addr = parseAddress(slash === -1 ? cidr : cidr.slice(0, slash))
  if (!addr) return undefined
  const max = addr.v6 ? 128 : 32
  const bits = slash === -1 ? max : Number(cidr.slice(slash + 1))
  if (!Number.isInteger(bits) || bits < 0 || bits > max || (slash !== -1 && !/^\d{1,3}$/.test(cidr.slice(slash + 1)))) return undefined
  const shift = BigInt(max - bits)
  return { v6: addr.v6, base: (addr.n >> shift) << shift, bits }
}

function inRange(r: Range, v6: boolean, n: bigint): boolean {
  if (r.v6 !== v6) return false
  const shift = BigInt((v6 ? 128 : 32) - r.bits)
  return n >> shift === r.base >> shift
}

/** A set of CIDR ranges, matched in O(ranges). IPv4-mapped IPv6 addresses match their IPv4 ranges. */
export class AddressSet {
  readonly #ranges: Range[]

  constructor(ranges: Iterable<string>) {
    this.#ranges = []
    for (const c of ranges) {
      const r = parseRange(c)
      if (!r) throw new Error(`not an IP address or CIDR: ${c}`)
      this.#ranges.push(r)
    }
  }

  get size(): number {
    return this.#ranges.length
  }

  has(address: string): boolean {
    const a = parseAddress(address)
    if (!a) return false
    if (this.#ranges.some((r) => inRange(r, a.v6, a.n))) return true
    const v4 = a.v6 ? embeddedV4(a.n) : undefined
    return v4 !== undefined && this.#ranges.some((r) => inRange(r, false, v4))
  }
}

/** Whether `s` is an IP address or a CIDR. */
export function isCidr(s: string): boolean {
  return parseRange(s) !== undefined
}

const V4_MAPPED = parseRange('::ffff:0:0/96')!
const V4_COMPAT = parseRange('::/96')!
const NAT64 = parseRange('64:ff9b::/96')!
const SIX_TO_FOUR = parseRange('2002::/16')!

/** The IPv4 address carried by an IPv6 address (mapped, compatible, NAT64, 6to4), if any. */
function embeddedV4(n: bigint): bigint | undefined {
  if (inRange(V4_MAPPED, true, n) || inRange(NAT64, true, n)) return n & 0xffffffffn
  if (inRange(V4_COMPAT, true, n) && n > 1n) return n & 0xffffffffn
  if (inRange(SIX_TO_FOUR, true, n)) return (n >> 80n) & 0xffffffffn
  return undefined
}

/** Refused ranges by reason. Metadata first, so its reason wins over link-local / private. */
const DENIED: readonly (readonly [string, readonly string[]])[] = [
  ['cloud metadata', ['169.254.169.254/32', '169.254.170.2/32', '100.100.100.200/32', 'fd00:ec2::254/128', '168.63.129.16/32']],
  ['unspecified', ['0.0.0.0/8', '::/128']],
  ['loopback', ['127.0.0.0/8', '::1/128']],
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7', 'fec0::/10']],
  ['link-local', ['169.254.0.0/16', 'fe80::/10']],
  ['shared address space (CGNAT)', ['100.64.0.0/10']],
  ['reserved', [
    '192.0.0.0/24', '192.0.2.0/24', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '240.0.0.0/4',
    '100::/64', '2001:db8::/32', '64:ff9b:1::/48',
  ]],
  ['multicast', ['224.0.0.0/4', 'ff00::/8']],
]
const DENIED_SETS = DENIED.map(([reason, cidrs]) => [reason, new AddressSet(cidrs)] as const)
const METADATA = DENIED_SETS[0]![1]

/** Host names refused before any lookup (they name the local machine or a metadata service). */
const DENIED_NAMES = new Set(['localhost', 'localhost.localdomain', 'metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal'])

/** Why an address is refused ('loopback', 'private', 'cloud metadata', ...), or undefined. */
export function deniedReason(address: string): string | undefined {
  for (const [reason, set] of DENIED_SETS) if (set.has(address)) return reason
  return undefined
}

// ---- the compiled policy --------------------------------------------------------------------------

class CompiledPolicy {
  readonly allowHttp: boolean
  readonly addresses: AddressSet
  readonly #exact = new Set<string>()
  readonly #suffixes: string[] = []
  readonly resolve: ResolveAll

  constructor(p: ProviderUrlPolicy) {
    this.allowHttp = p.allowHttp === true
    const cidrs: string[] = []
    for (const raw of p.allowlist ?? []) {
      const e = raw.trim().toLowerCase()
      if (e === '') continue
      if (isCidr(e)) cidrs.push(e)
      else if (e.startsWith('*.')) this.#suffixes.push(e.slice(1))
      else this.#exact.add(e.replace(/\.$/, ''))
    }
    this.addresses = new AddressSet(cidrs)
    this.resolve = p.resolve ?? (async (h) => dnsLookup(h, { all: true, verbatim: true }))
  }

  hostAllowed(host: string): boolean {
    if (this.#exact.has(host)) return true
    return this.#suffixes.some((s) => host.endsWith(s))
  }

  /** Why connecting to `address` (reached through `host`) is refused, or undefined. */
  refuse(address: string, host: string): string | undefined {
    if (this.addresses.has(address)) return undefined
    const reason = deniedReason(address)
    if (reason === undefined) return undefined
    if (reason !== 'cloud metadata' && this.hostAllowed(host)) return undefined
    return reason
  }
}

const compiled = new WeakMap<ProviderUrlPolicy, CompiledPolicy>()

function compile(p: ProviderUrlPolicy): CompiledPolicy {
  let c = compiled.get(p)
  if (!c) { c = new CompiledPolicy(p); compiled.set(p, c) }
  return c
}

/** Reasons an allowlist entry is malformed (for settings validation). */
export function checkAllowlist(entries: readonly string[]): string[] {
  const out: string[] = []
  for (const [i, e] of entries.entries()) {
    const s = e.trim()
    if (s.includes('/') && !isCidr(s)) out.push(`[${i}]: '${e}' is not a valid CIDR`)
    else if (!isCidr(s) && !/^(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/i.test(s)) out.push(`[${i}]: '${e}' is not a host name, IP address or CIDR`)
  }
  return out
}

function hostOf(u: URL): string {
  const h = u.hostname.toLowerCase()
  const bare = h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h
  return bare.endsWith('.') ? bare.slice(0, -1) : bare
}

/**
 * The checks that need no DNS: scheme, userinfo, fragment, control characters, denied names, IP
 * literals in denied ranges. Returns the reasons; empty means acceptable so far.
 */
export function checkProviderUrlSyntax(url: string, policy: ProviderUrlPolicy = {}): string[] {
  const p = compile(policy)
  // new URL() silently strips tabs, newlines and leading/trailing C0 characters: refuse them instead.
  if (/[\x00-\x20\x7f]/.test(url)) return ['the URL contains whitespace or control characters']
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return ['not a valid absolute URL']
  }
  const errors: string[] = []
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && p.allowHttp)) {
    errors.push(u.protocol === 'http:' ? 'http: URLs are not allowed (https only; the operator can allow http with security.allowHttpProviderUrls)' : `the scheme ${u.protocol} is not allowed (https only)`)
  }
  if (u.username !== '' || u.password !== '') errors.push('credentials in the URL (user:password@) are not allowed; configure the key as a credential')
  if (url.includes('#')) errors.push('a fragment (#...) is not allowed')
  const host = hostOf(u)
  if (host === '') errors.push('the URL has no host')
  else if (parseAddress(host)) {
    const why = p.refuse(host, host)
    if (why) errors.push(`the host ${host} is a ${why} address, which is not allowed (the operator can allow it in security.providerUrlAllowlist)`)
  } else if ((DENIED_NAMES.has(host) || host.endsWith('.localhost')) && !p.hostAllowed(host)) {
    errors.push(`the host ${host} names the local machine or a metadata service, which is not allowed`)
  }
  return errors
}

/**
 * Config-time check of a provider URL. Syntax first; then every address the host resolves to must be
 * allowed (one bad address refuses the URL: a resolver may rotate between them). A host that does not
 * resolve is refused too. Returns the reasons; empty means accepted.
 */
export async function checkProviderUrl(url: string, policy: ProviderUrlPolicy = {}): Promise<string[]> {
  const errors = checkProviderUrlSyntax(url, policy)
  if (errors.length > 0) return errors
  const p = compile(policy)
  const host = hostOf(new URL(url))
  if (parseAddress(host)) return []
  let addrs: readonly ResolvedAddress[]
  try {
    addrs = await p.resolve(host)
  } catch (e) {
    return policy.allowUnresolvable === true ? [] : [`the host ${host} does not resolve (${(e as { code?: string }).code ?? (e as Error).message})`]
  }
  if (addrs.length === 0) return policy.allowUnresolvable === true ? [] : [`the host ${host} does not resolve`]
  for (const a of addrs) {
    const why = p.refuse(a.address, host)
    if (why) errors.push(`the host ${host} resolves to ${a.address}, a ${why} address, which is not allowed (the operator can allow it in security.providerUrlAllowlist)`)
  }
  return errors
}

// ---- connect time -----------------------------------------------------------------------------------

function blocked(host: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_UPSTREAM_ADDRESS_BLOCKED', { host, reason }, { details: 'upstream.address_blocked' })
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | ResolvedAddress[], family?: number) => void

export interface GuardedConnectOptions {
  /** Connect timeout, ms (undici's `connect.timeout`). */
  timeout?: number
  /** Extra CA certificates (PEM) for upstream TLS; verification is always on. */
  ca?: string | Buffer | (string | Buffer)[]
}

/**
 * An undici connector (`new Pool(origin, { connect: guardedConnect(policy) })`) that re-checks the
 * addresses at connect time: the DNS answer is filtered through the policy before the socket connects
 * (DNS rebinding), IP literals are checked before connecting, and the connected socket's remote
 * address is checked once more. A refusal fails the request with MCP_ERR_UPSTREAM_ADDRESS_BLOCKED.
 * TLS certificates are always verified. Redirects are never followed (undici follows none without a
 * redirect interceptor, and the gateway installs none).
 */
export function guardedConnect(policy: ProviderUrlPolicy = {}, opts: GuardedConnectOptions = {}): buildConnector.connector {
  const p = compile(policy)
  const lookup = (hostname: string, options: { all?: boolean }, cb: LookupCallback): void => {
    const host = hostname.toLowerCase().replace(/\.$/, '')
    p.resolve(host).then((addrs) => {
      for (const a of addrs) {
        const why = p.refuse(a.address, host)
        if (why) { cb(blocked(host, `it resolves to a ${why} address`), []); return }
      }
      if (addrs.length === 0) { cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), []); return }
      if (options.all) cb(null, addrs.map((a) => ({ address: a.address, family: a.family })))
      else cb(null, addrs[0]!.address, addrs[0]!.family)
    }, (e: NodeJS.ErrnoException) => cb(e, []))
  }
  const inner = buildConnector({
    rejectUnauthorized: true,
    ...(opts.timeout !== undefined ? { timeout: opts.timeout } : {}),
    ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
    lookup,
  } as buildConnector.BuildOptions)
  return (options, callback) => {
    const host = options.hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '')
    if (parseAddress(host)) {
      const why = p.refuse(host, host)
      if (why) { callback(blocked(host, `it is a ${why} address`), null); return }
    } else if ((DENIED_NAMES.has(host) || host.endsWith('.localhost')) && !p.hostAllowed(host)) {
      callback(blocked(host, 'the name is reserved for the local machine or a metadata service'), null)
      return
    }
    inner(options, (err, socket) => {
      if (err || !socket) { callback(err ?? new Error('connect failed'), null); return }
      const remote = (socket as Socket).remoteAddress
      const why = remote === undefined ? undefined : p.refuse(remote, host)
      if (why) { socket.destroy(); callback(blocked(host, `it connected to a ${why} address`), null); return }
      callback(null, socket)
    })
  }
}
