/** Splits a provider base URL into the pool origin and the path prefix (`https://api.openai.com/v1` → origin + `/v1`). */
export function splitBaseUrl(baseUrl: string): { origin: string; basePath: string } {
  const u = new URL(baseUrl)
  return { origin: u.origin, basePath: u.pathname.replace(/\/+$/, '') }
}

/**
 * A base URL that carries a query, a fragment or `user:password@`: splitBaseUrl keeps the origin and the path only,
 * so they would be dropped silently, and a key placed there would be shown wherever the config is (GET /config, the
 * admin API, the audit log). Keys go in `apiKey` (through the admin API: `credentials`).
 */
export function baseUrlErrors(baseUrl: string): string[] {
  let u: URL
  try { u = new URL(baseUrl) } catch { return ['baseUrl: not a valid URL'] }
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') {
    return ['baseUrl: must not carry a query, a fragment or credentials (give a key as apiKey, through the admin API in credentials)']
  }
  return []
}
