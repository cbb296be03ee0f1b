/**
 * Webhook URLs as they may be shown: a Slack-style incoming webhook (`https://hooks.slack.com/services/T…/B…/<token>`)
 * is authorised by its path alone, others by a token in the query or credentials before the host. Shown: the scheme
 * and the host (and port), the rest replaced.
 */

/** `https://hooks.slack.com/[redacted]`; a string that does not parse as a URL is redacted whole. */
export function redactUrl(url: string): string {
  let u: URL
  try { u = new URL(url) } catch { return '[redacted]' }
  const hidden = u.username !== '' || u.password !== '' || (u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== ''
  return hidden ? `${u.protocol}//${u.host}/[redacted]` : `${u.protocol}//${u.host}/`
}

/** `text` with every occurrence of `url` (as written, and as the WHATWG parser normalises it) redacted, in one pass. */
export function scrubUrl(text: string, url: string): string {
  if (url === '') return text
  const forms = new Set([url])
  try { forms.add(new URL(url).href) } catch { /* as written only */ }
  const alternatives = [...forms].sort((a, b) => b.length - a.length).map((f) => f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
  const shown = redactUrl(url)
  return text.replace(new RegExp(alternatives.join('|'), 'g'), () => shown)
}
