/** Splits a provider base URL into the pool origin and the path prefix (`https://api.openai.com/v1` → origin + `/v1`). */
export function splitBaseUrl(baseUrl: string): { origin: string; basePath: string } {
  const u = new URL(baseUrl)
  return { origin: u.origin, basePath: u.pathname.replace(/\/+$/, '') }
}
