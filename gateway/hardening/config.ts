/**
 * Settings of the listener hardening (`server.limits`, `server.shedding`, `server.tls`, `admin.tls`)
 * and of egress safety (`security`, `upstream.caFile`): JSON Schemas with their defaults, merged into
 * the settings schema by gateway/settings.ts. Documented in docs/security.md.
 */
import { checkAllowlist, isCidr } from '../../providers/shared/safe-url.ts'
import type { JSONSchema } from '../validate.ts'

export interface LimitSettings {
  /** Open connections per client address (0: no cap). Over it: 429, connection closed. */
  connectionsPerIp: number
  /** Open connections on the listener in total (0: no cap). Over it: 503, connection closed. */
  connections: number
  /** Requests per second per client address, checked before authentication (0: no limit). */
  requestsPerSecondPerIp: number
  /** Token-bucket burst of the per-address request limit. */
  burstPerIp: number
  /** Failed authentications (401) per address within `authFailureWindowMs` before it is blocked (0: off). */
  authFailures: number
  authFailureWindowMs: number
  /** How long a blocked address gets 429 for every request. */
  authFailureCooldownMs: number
  /** Addresses or CIDRs the per-address limits do not apply to (default: loopback). */
  exempt: string[]
  /** Most client addresses tracked at once by each limiter (the oldest is forgotten first). */
  trackedAddresses: number
}

export interface SheddingSettings {
  enabled: boolean
  /** Shed while the event-loop delay p99 is above this, ms, in `eventLoopWindows` consecutive sample windows. */
  eventLoopDelayMs: number
  /** Consecutive windows over `eventLoopDelayMs` before shedding starts (one spike, such as a big JSON body, is not overload). */
  eventLoopWindows: number
  /** Shed while V8 heap used / heap limit is above this ratio (0: off). */
  heapUsedRatio: number
  /** Shed while the resident set size is above this, bytes (0: off). */
  rssBytes: number
  /** The sample window; the state is recomputed once per window by a timer, never per request. */
  sampleIntervalMs: number
  /** Retry-After on shed responses, seconds. */
  retryAfterSeconds: number
}

export interface TlsSettings {
  certFile: string
  keyFile: string
  /** CA bundle for client certificates: when set, clients must present one it signed (mutual TLS). */
  caFile?: string
  minVersion: 'TLSv1.2' | 'TLSv1.3'
  /** Reload the certificate and key when the files change (no restart, no dropped connections). */
  watch: boolean
}

export interface SecuritySettings {
  /** Host names (`*.svc.cluster.local`), addresses or CIDRs that provider URLs from the API may use although private. */
  providerUrlAllowlist: string[]
  /** Accept `http:` provider URLs from the API (default: https only). */
  allowHttpProviderUrls: boolean
}

const int = (min: number, def: number): JSONSchema => ({ type: 'integer', minimum: min, default: def })

export const limitsSchema: JSONSchema = {
  type: 'object', additionalProperties: false, default: {},
  properties: {
    connectionsPerIp: int(0, 256),
    connections: int(0, 10_000),
    requestsPerSecondPerIp: int(0, 200),
    burstPerIp: int(1, 400),
    authFailures: int(0, 20),
    authFailureWindowMs: int(1, 60_000),
    authFailureCooldownMs: int(1, 300_000),
    exempt: { type: 'array', items: { type: 'string', minLength: 1 }, default: ['127.0.0.0/8', '::1'] },
    trackedAddresses: int(1, 100_000),
  },
}

export const sheddingSchema: JSONSchema = {
  type: 'object', additionalProperties: false, default: {},
  properties: {
    enabled: { type: 'boolean', default: true },
    eventLoopDelayMs: int(1, 200),
    eventLoopWindows: int(1, 2),
    heapUsedRatio: { type: 'number', minimum: 0, maximum: 1, default: 0.9 },
    rssBytes: int(0, 0),
    sampleIntervalMs: int(50, 500),
    retryAfterSeconds: int(1, 10),
  },
}

export const tlsSchema: JSONSchema = {
  type: 'object', additionalProperties: false, required: ['certFile', 'keyFile'],
  properties: {
    certFile: { type: 'string', minLength: 1 },
    keyFile: { type: 'string', minLength: 1 },
    caFile: { type: 'string', minLength: 1 },
    minVersion: { enum: ['TLSv1.2', 'TLSv1.3'], default: 'TLSv1.2' },
    watch: { type: 'boolean', default: true },
  },
}

export const securitySchema: JSONSchema = {
  type: 'object', additionalProperties: false, default: {},
  properties: {
    providerUrlAllowlist: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    allowHttpProviderUrls: { type: 'boolean', default: false },
  },
}

/** Checks the schema cannot express (addresses and CIDRs); reasons named by settings path. */
export function checkHardeningSettings(s: { server: { limits: LimitSettings }; security: SecuritySettings }): string[] {
  const out: string[] = []
  for (const [i, e] of s.server.limits.exempt.entries()) if (!isCidr(e.trim())) out.push(`server.limits.exempt[${i}]: '${e}' is not an IP address or CIDR`)
  for (const r of checkAllowlist(s.security.providerUrlAllowlist)) out.push(`security.providerUrlAllowlist${r}`)
  return out
}
