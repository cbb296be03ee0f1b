/** The shape of one corpus case (test/corpus/cases.jsonl) and how to get its bytes. */

export interface CorpusExpect {
  /** Accepted status range, inclusive. Never 5xx. */
  status: [number, number]
  /** The server must close the connection after its answer (framing errors, smuggling). */
  close?: boolean
  /** No answer may come from the smuggled request (`/smuggled-canary`). */
  canary?: boolean
  /** Final answers to wait for (pipelining); default 1. */
  responses?: number
  /** Ends only with a server timeout (requestTimeout / headersTimeout). */
  slow?: boolean
}

export interface CorpusCase {
  id: string
  category: string
  description: string
  target: 'data' | 'admin'
  /** The exact bytes, base64. */
  raw?: string
  /** Large cases: the exact bytes as [base64, repeat] parts. */
  parts?: [string, number][]
  expect: CorpusExpect
}

export function bytesOf(c: CorpusCase): Buffer {
  if (c.raw !== undefined) return Buffer.from(c.raw, 'base64')
  const out: Buffer[] = []
  for (const [b64, n] of c.parts ?? []) {
    const part = Buffer.from(b64, 'base64')
    for (let i = 0; i < n; i++) out.push(part)
  }
  return Buffer.concat(out)
}
