/**
 * The URL a provider from the admin API connects to, and its SSRF check (docs/security.md).
 *
 * A provider's `baseUrl` may be absent: the adapter then uses its default (the `default` of its config schema, filled
 * in by the same validation the pipeline runs before creating the adapter). Those defaults are public https hosts for
 * openai, anthropic and google, but `http://127.0.0.1:11434` for ollama: checking only a baseUrl written in the body
 * let `{"provider": "ollama"}` reach the gateway's own machine. So the check, at write time and at connect time, is
 * on the effective URL, the one the adapter will use.
 */
import { GatewayError } from '../gateway/errors.ts'
import { adapterFactory } from '../providers/registry.ts'
import { checkProviderUrl, type ProviderUrlPolicy } from '../providers/shared/safe-url.ts'

/**
 * The base URL the adapter of `type` uses with `config`: its `baseUrl`, else the adapter's default; undefined when
 * there is neither (a type that requires one: the adapter's validation refuses the config) or the type is unknown.
 */
export function effectiveBaseUrl(type: string, config: Readonly<Record<string, unknown>>): string | undefined {
  if (typeof config['baseUrl'] === 'string') return config['baseUrl']
  const f = adapterFactory(type)
  if (!f) return undefined
  // The adapter's own validation fills in its defaults (ajv useDefaults), as the pipeline's compile does.
  const filled: Record<string, unknown> = { ...structuredClone(config), type }
  f.configErrors(filled)
  return typeof filled['baseUrl'] === 'string' ? filled['baseUrl'] : undefined
}

/**
 * Write-time SSRF check of a provider config arriving through the API: https only unless allowed, no credentials or
 * fragments, no private, loopback, link-local or metadata address unless the operator allowlist permits. A 422 names
 * `config.baseUrl`, also when the URL refused is the adapter's default (the message says so).
 *
 * A name that does not resolve from the control plane is accepted (`allowUnresolvable`): the gateway may run where the
 * name resolves and the control plane does not (split DNS), and every connection is checked by the connect-time guard
 * anyway, which refuses to connect to a name that does not resolve to allowed addresses.
 */
export async function checkProviderBaseUrl(type: string, config: Readonly<Record<string, unknown>>, policy: ProviderUrlPolicy): Promise<void> {
  const url = effectiveBaseUrl(type, config)
  if (url === undefined) return
  const errors = await checkProviderUrl(url, { ...policy, allowUnresolvable: true })
  if (errors.length === 0) return
  const what = typeof config['baseUrl'] === 'string' ? 'config.baseUrl' : `config.baseUrl (absent: the ${type} adapter's default ${url})`
  throw new GatewayError('MCP_ERR_ADMIN_UNPROCESSABLE', { reason: `${what}: ${errors.join('; ')}` }, { param: 'config.baseUrl', details: 'admin.provider_url_refused' })
}

/** The origins the providers of the API connect to (effective base URLs): these pools connect through the guard. */
export function apiProviderOrigins(providers: Iterable<Readonly<Record<string, unknown>>>): Set<string> {
  const out = new Set<string>()
  for (const p of providers) {
    const url = effectiveBaseUrl(String(p['type']), p)
    if (url !== undefined && URL.canParse(url)) out.add(new URL(url).origin)
  }
  return out
}
