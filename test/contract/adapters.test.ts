/**
 * Runs the adapter contract (adapter-contract.ts) for every built-in provider against its
 * wire-format mock, and for the custom example adapter (no upstream: the HTTP checks are marked
 * not applicable in its capabilities).
 */
import { fileURLToPath } from 'node:url'
import { adapterFactory } from '../../providers/registry.ts'
import type { AdapterFactory } from '../../providers/types.ts'
import { startAnthropicMock } from '../helpers/anthropic-mock.ts'
import { startAzureMock } from '../helpers/azure-mock.ts'
import { startGeminiMock } from '../helpers/gemini-mock.ts'
import { startOllamaMock } from '../helpers/ollama-mock.ts'
import { startOpenAIMock } from '../helpers/openai-mock.ts'
import {
  CONTRACT_TIMEOUTS, runAdapterContract,
  type ContractFault, type ContractMock, type ContractMockRequest, type UpstreamCapability,
} from './adapter-contract.ts'

/** The registry's factory, as the gateway's composition root gets it. */
function factory(type: string): AdapterFactory {
  const f = adapterFactory(type)
  if (!f) throw new Error(`no adapter factory for ${type}`)
  return f
}

/** Any of the helper mocks: they share url/requests/fault/reset/close. */
interface HelperMock {
  readonly url: string
  readonly requests: readonly ContractMockRequest[]
  set fault(f: ContractFault | null)
  reset(): void
  close(): Promise<void>
}

function contractMock(m: HelperMock): ContractMock {
  return {
    get url() { return m.url },
    get requests() { return m.requests },
    setFault(f) { m.fault = f },
    reset() { m.reset() },
    close() { return m.close() },
  }
}

const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('')
const alnum = (n: number): string => Array.from({ length: n }, () => 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(Math.random() * 62)]).join('')

const timeouts = (): Record<string, number> => ({ ...CONTRACT_TIMEOUTS })
const echoReply = (text: string): string => `echo: ${text.slice('echo '.length)}`
const bearer = (k: string): string => `Bearer ${k}`

const OPENAI_CODES: UpstreamCapability['providerCodes'] = { 429: 'rate_limit_exceeded', 400: null, 401: 'invalid_api_key', 500: 'server_error', 503: 'server_error' }
const ONE_TOOL_CALL = { na: 'mock capability: the mock answers with one tool call (tools[0]) per turn' }
const OPENAI_USAGE = { na: 'OpenAI-family upstreams report stream usage only with stream_options.include_usage (forwarded as is)' }
const OPENAI_NO_DONE = { na: "mock capability: openai-mock's noDone keeps the finish chunk, which completes an OpenAI stream" }
const OPENAI_NO_STREAM_ERROR = { na: 'mock capability: openai-mock has no in-stream error event' }

runAdapterContract({
  title: 'openai',
  factory: factory('openai'),
  providerName: 'oa',
  config: ({ mockUrl, apiKey }) => ({ type: 'openai', baseUrl: mockUrl, apiKey, timeouts: timeouts() }),
  wrongType: { field: 'apiKey', value: 42 },
  model: 'gpt-4o-mini',
  reply: echoReply,
  startMock: async () => contractMock(await startOpenAIMock()),
  capabilities: {
    upstream: { credentialHeader: 'authorization', credentialValue: bearer, providerCodes: OPENAI_CODES },
    tools: true,
    parallelToolCalls: ONE_TOOL_CALL,
    streamUsageUnrequested: OPENAI_USAGE,
    endWithoutCompletion: OPENAI_NO_DONE,
    midStreamError: OPENAI_NO_STREAM_ERROR,
    embeddings: { model: 'text-embedding-3-small' },
    failingCall: 'upstream-500',
  },
})

runAdapterContract({
  title: 'openai-compatible',
  factory: factory('openai-compatible'),
  providerName: 'vllm',
  config: ({ mockUrl, apiKey }) => ({ type: 'openai-compatible', baseUrl: mockUrl, apiKey, timeouts: timeouts() }),
  wrongType: { field: 'baseUrl', value: 8000 },
  model: 'gpt-4o-mini',
  reply: echoReply,
  startMock: async () => contractMock(await startOpenAIMock()),
  capabilities: {
    // Self-hosted servers take any token (vllm --api-key, LM Studio, TGI).
    upstream: { credentialHeader: 'authorization', credentialValue: bearer, providerCodes: OPENAI_CODES, nativeKey: () => `token-${alnum(24)}` },
    tools: true,
    parallelToolCalls: ONE_TOOL_CALL,
    streamUsageUnrequested: OPENAI_USAGE,
    endWithoutCompletion: OPENAI_NO_DONE,
    midStreamError: OPENAI_NO_STREAM_ERROR,
    embeddings: { model: 'text-embedding-3-small' },
    failingCall: 'upstream-500',
  },
})

for (const apiMode of ['deployments', 'v1'] as const) {
  runAdapterContract({
    title: `azure-openai (${apiMode} mode)`,
    factory: factory('azure-openai'),
    providerName: 'az',
    config: ({ mockUrl, apiKey }) => ({
      type: 'azure-openai', baseUrl: mockUrl, apiKey, apiMode,
      deployments: { 'gpt-4o': 'contract-gpt4o', 'text-embedding-3-small': 'contract-embed' },
      timeouts: timeouts(),
    }),
    wrongType: { field: 'deployments', value: 'gpt-4o' },
    model: 'gpt-4o',
    reply: echoReply,
    startMock: async () => contractMock(await startAzureMock()),
    capabilities: {
      // Azure keys are 32 hex characters.
      upstream: { credentialHeader: 'api-key', credentialValue: (k) => k, providerCodes: OPENAI_CODES, nativeKey: () => hex(32) },
      tools: true,
      parallelToolCalls: ONE_TOOL_CALL,
      streamUsageUnrequested: OPENAI_USAGE,
      endWithoutCompletion: OPENAI_NO_DONE,
      midStreamError: OPENAI_NO_STREAM_ERROR,
      embeddings: { model: 'text-embedding-3-small' },
      failingCall: 'upstream-500',
    },
  })
}

runAdapterContract({
  title: 'anthropic',
  factory: factory('anthropic'),
  providerName: 'claude',
  config: ({ mockUrl, apiKey }) => ({ type: 'anthropic', baseUrl: mockUrl, apiKey, timeouts: timeouts() }),
  wrongType: { field: 'defaultMaxTokens', value: 'lots' },
  model: 'claude-sonnet-4-5-20250929',
  reply: echoReply,
  startMock: async () => contractMock(await startAnthropicMock()),
  capabilities: {
    upstream: {
      credentialHeader: 'x-api-key',
      credentialValue: (k) => k,
      nativeKey: () => `sk-ant-api03-${alnum(40)}`,
      providerCodes: { 429: 'rate_limit_error', 400: 'invalid_request_error', 401: 'authentication_error', 500: 'api_error', 503: 'api_error' },
    },
    tools: true,
    parallelToolCalls: ONE_TOOL_CALL,
    streamUsageUnrequested: true,
    endWithoutCompletion: { fault: { noStop: true } },
    midStreamError: { fault: { errorAfter: 2 }, providerCode: 'overloaded_error' },
    embeddings: { na: 'Anthropic has no embeddings API' },
    failingCall: 'upstream-500',
  },
})

runAdapterContract({
  title: 'google',
  factory: factory('google'),
  providerName: 'gem',
  config: ({ mockUrl, apiKey }) => ({ type: 'google', baseUrl: mockUrl, apiKey, timeouts: timeouts() }),
  wrongType: { field: 'safetySettings', value: { category: 'x' } },
  model: 'gemini-2.5-flash',
  reply: echoReply,
  startMock: async () => contractMock(await startGeminiMock()),
  capabilities: {
    upstream: {
      credentialHeader: 'x-goog-api-key',
      credentialValue: (k) => k,
      nativeKey: () => `AIza${alnum(35)}`,
      providerCodes: { 429: 'RESOURCE_EXHAUSTED', 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 500: 'INTERNAL', 503: 'UNAVAILABLE' },
    },
    tools: true,
    parallelToolCalls: { na: 'mock capability: the Gemini mock answers with one functionCall per turn' },
    streamUsageUnrequested: true,
    endWithoutCompletion: { fault: { noFinish: true } },
    midStreamError: { fault: { errorAfter: 2 }, providerCode: 'INTERNAL' },
    embeddings: { model: 'gemini-embedding-001' },
    failingCall: 'upstream-500',
  },
})

runAdapterContract({
  title: 'ollama',
  factory: factory('ollama'),
  providerName: 'local',
  config: ({ mockUrl, apiKey }) => ({ type: 'ollama', baseUrl: mockUrl, apiKey, timeouts: timeouts() }),
  wrongType: { field: 'keepAlive', value: true },
  model: 'llama3.2',
  reply: echoReply,
  startMock: async () => contractMock(await startOllamaMock()),
  capabilities: {
    upstream: {
      credentialHeader: 'authorization',
      credentialValue: bearer,
      // Ollama itself has no auth; a proxy in front of it takes any token.
      nativeKey: () => `ollama-proxy-${alnum(24)}`,
      // Ollama's errors are `{"error": "<message>"}` without codes.
      providerCodes: { 429: null, 400: null, 401: null, 500: null, 503: null },
    },
    tools: true,
    parallelToolCalls: { na: 'mock capability: the Ollama mock answers with one tool call per turn' },
    streamUsageUnrequested: true,
    endWithoutCompletion: { fault: { noDone: true } },
    // The Ollama mock sends `{"error": ...}` mid-stream for a prompt containing "stream error"; Ollama has no codes.
    midStreamError: { prompt: 'please stream error', providerCode: null },
    embeddings: { model: 'nomic-embed-text' },
    failingCall: 'upstream-500',
  },
})

const ECHO_MODULE = fileURLToPath(new URL('../../examples/custom-provider/echo-adapter.ts', import.meta.url))
const NO_UPSTREAM = { na: 'the echo adapter makes no upstream call' }

runAdapterContract({
  title: 'custom (examples/custom-provider/echo-adapter.ts)',
  factory: factory('custom'),
  providerName: 'echo',
  config: () => ({ type: 'custom', module: ECHO_MODULE, options: { chunkSize: 4 } }),
  wrongType: { field: 'module', value: 42 },
  model: 'echo-1',
  // The echo adapter answers with the last user message reversed.
  reply: (text) => [...text].reverse().join(''),
  capabilities: {
    upstream: NO_UPSTREAM,
    tools: { na: 'the echo adapter has no tool calling' },
    parallelToolCalls: { na: 'the echo adapter has no tool calling' },
    streamUsageUnrequested: true,
    endWithoutCompletion: NO_UPSTREAM,
    midStreamError: NO_UPSTREAM,
    embeddings: { na: 'the echo adapter has no embed()' },
    // A request without user text: the echo adapter rejects it (MCP_ERR_REQ_BODY_INVALID) and counts the error.
    failingCall: { request: { model: 'echo-1', messages: [{ role: 'system', content: 'no user turn' }] } },
  },
})
