/** An inbound API dialect: how errors, completions and streams are written back to the client. */
import type { GatewayError } from '../errors.ts'
import type { ChatChunk, ChatResponse, EmbeddingResponse } from '../../providers/types.ts'
import type { RequestCtx } from '../context.ts'

export interface StreamEncoder {
  chunk(c: ChatChunk): string
  /**
   * Optional: a text-lane item (providers/types.ts TextLane) written directly, as the chunk it stands for would be;
   * undefined when the encoder cannot (then encode `stream.textChunk(text)`). Its id, created and model are those of
   * the last chunk encoded (text-lane items never start a stream: the mapper's first chunk does).
   */
  text?(text: string): string | undefined
  end(): string
  error(e: GatewayError): string
}

export interface Inbound {
  /** Only 'openai' is eligible for byte pass-through; 'execute' wraps the answer (admin/execute-inbound.ts). */
  readonly name: 'openai' | 'anthropic' | 'execute'
  /** `ctx`, when the request got that far, lets a dialect name the fields as its client sent them. */
  errorBody(e: GatewayError, requestId: string, ctx?: RequestCtx): unknown
  /** `ctx` lets a dialect add request facts to the answer (the execute API's execution id, version, latency). */
  encodeResponse(res: ChatResponse | EmbeddingResponse, requestModel: string, ctx?: RequestCtx): string
  createStreamEncoder(requestModel: string, includeUsage: boolean, ctx?: RequestCtx): StreamEncoder
}
