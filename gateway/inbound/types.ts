/** An inbound API dialect: how errors, completions and streams are written back to the client. */
import type { GatewayError } from '../errors.ts'
import type { ChatChunk, ChatResponse, EmbeddingResponse } from '../../providers/types.ts'

export interface StreamEncoder {
  chunk(c: ChatChunk): string
  end(): string
  error(e: GatewayError): string
}

export interface Inbound {
  readonly name: 'openai' | 'anthropic'
  errorBody(e: GatewayError, requestId: string): unknown
  encodeResponse(res: ChatResponse | EmbeddingResponse, requestModel: string): string
  createStreamEncoder(requestModel: string, includeUsage: boolean): StreamEncoder
}
