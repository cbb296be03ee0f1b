/** Embedding helpers shared by the providers whose APIs answer only floats (google, ollama). Pure. */
import type { EmbeddingRequest, EmbeddingResponse } from '../types.ts'

/** float32 little-endian bytes, base64: what OpenAI returns for `encoding_format: 'base64'`. */
export function floatsToBase64(values: readonly number[]): string {
  const f = Float32Array.from(values)
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64')
}

/**
 * The embeddings as the request's `encoding_format` asks: base64 (the default of the official openai SDKs) is
 * encoded here from the floats the provider answered; float (or none) leaves them as they are.
 */
export function encodeEmbeddings(data: EmbeddingResponse['data'], format: unknown): EmbeddingResponse['data'] {
  if (format !== 'base64') return data
  return data.map((d) => ({ ...d, embedding: typeof d.embedding === 'string' ? d.embedding : floatsToBase64(d.embedding) }))
}

/**
 * Why an embeddings answer cannot go to the client, or undefined: one vector for each input (when the count of inputs
 * is known), each a non-empty list of finite numbers. Clients pair vectors with their inputs by `index`: a vector left
 * out would be a silent gap, and a vector that is not a list of numbers breaks them (or, base64-encoded, becomes NaNs).
 */
export function embeddingsProblem(vectors: readonly unknown[], inputs?: number): string | undefined {
  if (inputs !== undefined && vectors.length !== inputs) return `${vectors.length} embeddings for ${inputs} inputs`
  for (let i = 0; i < vectors.length; i++) {
    const v = vectors[i]
    if (!Array.isArray(v) || v.length === 0) return `embedding ${i} is not a list of numbers`
    for (let k = 0; k < v.length; k++) {
      const x: unknown = v[k]
      if (typeof x !== 'number' || !Number.isFinite(x)) return `embedding ${i} is not a list of numbers`
    }
  }
  return undefined
}

/** How many inputs an embeddings request has: a string, or a list of token ids, is one; a list of those, its length. */
export function embeddingInputCount(req: EmbeddingRequest): number {
  const input: unknown = req.input
  if (!Array.isArray(input)) return 1
  return input.length > 0 && typeof input[0] === 'number' ? 1 : input.length
}
