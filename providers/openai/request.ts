/** Canonical → OpenAI: the canonical format is OpenAI's, so only the model name changes. */
import type { ChatRequest, EmbeddingRequest } from '../types.ts'
import type { UpstreamBody } from '../shared/translation.ts'

export function toOpenAIChat(req: ChatRequest, model: string, stream: boolean, basePath: string): UpstreamBody {
  const body: ChatRequest = { ...req, model }
  if (stream) body.stream = true
  else delete body.stream
  if (!stream) delete body.stream_options
  return { path: `${basePath}/chat/completions`, body }
}

export function toOpenAIEmbeddings(req: EmbeddingRequest, model: string, basePath: string): UpstreamBody {
  return { path: `${basePath}/embeddings`, body: { ...req, model } }
}
