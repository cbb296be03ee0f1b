/**
 * An OpenAI-style upstream whose every answer is scripted by the request's `model`: for byte-exact answers the
 * provider mocks do not give (events split or cut at chosen bytes, streams without [DONE], echoed keys). `url` is
 * the base URL a provider's `baseUrl` takes (`.../v1`).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ScriptedUpstream {
  url: string
  close(): Promise<void>
}

export async function startScriptedUpstream(answer: (model: string, res: http.ServerResponse) => void): Promise<ScriptedUpstream> {
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString('utf8') })
    req.on('end', () => answer((JSON.parse(body) as { model: string }).model, res))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}
