/** Embedding helpers shared by the providers whose APIs answer only floats (google, ollama). Pure. */
import type { EmbeddingResponse } from '../types.ts'

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
