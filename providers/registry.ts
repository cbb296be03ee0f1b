/** Provider type → adapter factory. Reached only from the gateway's composition root. */
import type { AdapterFactory } from './types.ts'
import { anthropicFactory } from './anthropic/adapter.ts'
import { azureOpenAIFactory } from './azure-openai/adapter.ts'
import { customFactory } from './custom/adapter.ts'
import { googleFactory } from './google/adapter.ts'
import { ollamaFactory } from './ollama/adapter.ts'
import { openaiCompatibleFactory } from './openai-compatible/adapter.ts'
import { openaiFactory } from './openai/adapter.ts'

const factories: ReadonlyMap<string, AdapterFactory> = new Map<string, AdapterFactory>([
  [openaiFactory.type, openaiFactory],
  [anthropicFactory.type, anthropicFactory],
  [googleFactory.type, googleFactory],
  [azureOpenAIFactory.type, azureOpenAIFactory],
  [openaiCompatibleFactory.type, openaiCompatibleFactory],
  [ollamaFactory.type, ollamaFactory],
  [customFactory.type, customFactory],
])

export function adapterFactory(type: string): AdapterFactory | undefined {
  return factories.get(type)
}

export function adapterTypes(): string[] {
  return [...factories.keys()]
}
