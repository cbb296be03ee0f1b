/** The `openai-compatible` adapter: the OpenAI adapter on a user-given base URL, key optional. */
import type { AdapterFactory } from '../types.ts'
import { createOpenAIAdapter } from '../openai/adapter.ts'
import { openaiCompatibleConfigErrors, type OpenAICompatibleConfig } from './config.ts'

export const openaiCompatibleFactory: AdapterFactory = {
  type: 'openai-compatible',
  configErrors: openaiCompatibleConfigErrors,
  create: (name, config, deps) =>
    createOpenAIAdapter('openai-compatible', name, config as unknown as OpenAICompatibleConfig, deps, openaiCompatibleConfigErrors),
}
