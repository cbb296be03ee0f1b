/** OpenAI → canonical: a shape check, since the canonical format is OpenAI's. */
import { GatewayError } from '../../gateway/errors.ts'
import type { ChatResponse, EmbeddingResponse } from '../types.ts'

export function fromOpenAIChat(json: unknown, provider: string): ChatResponse {
  const r = json as ChatResponse
  if (r === null || typeof r !== 'object' || !Array.isArray(r.choices)) {
    throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason: "no 'choices' in the completion" })
  }
  return r
}

export function fromOpenAIEmbeddings(json: unknown, provider: string): EmbeddingResponse {
  const r = json as EmbeddingResponse
  if (r === null || typeof r !== 'object' || !Array.isArray(r.data)) {
    throw new GatewayError('MCP_ERR_UPSTREAM_BAD_RESPONSE', { provider, reason: "no 'data' in the embeddings response" })
  }
  return r
}
