/**
 * JSON Schemas of the inbound OpenAI bodies, compiled once at boot. Known fields are type-checked
 * so a bad value is a 400 naming the field; unknown fields pass (providers add parameters often).
 */
import { compileSchema, NO_CONTROL_PATTERN, type JSONSchema, type Validator } from '../validate.ts'
import type { ChatRequest, EmbeddingRequest } from '../../providers/types.ts'

const num = (min?: number, max?: number): JSONSchema => ({ type: ['number', 'null'], ...(min !== undefined ? { minimum: min } : {}), ...(max !== undefined ? { maximum: max } : {}) })
/** Integers are bounded: ajv takes `1e309` (Infinity) as one, and JSON.stringify sends Infinity upstream as `null`. */
const MAX_INT = Number.MAX_SAFE_INTEGER
const posInt: JSONSchema = { type: ['integer', 'null'], minimum: 1, maximum: MAX_INT }
/** A model name: no control characters (a NUL went upstream as part of the name). */
export const MODEL_NAME_MAX = 256
const modelName: JSONSchema = { type: 'string', minLength: 1, maxLength: MODEL_NAME_MAX, pattern: NO_CONTROL_PATTERN }

/** A part of `type` has `then`'s fields. */
const partOf = (type: string, then: JSONSchema): JSONSchema => ({ if: { properties: { type: { const: type } }, required: ['type'] }, then })
const stringField = (name: string): JSONSchema => ({ required: [name], properties: { [name]: { type: 'string' } } })
/**
 * A content part, whatever the message's role: the fields OpenAI requires of each type it has are type-checked (a text
 * part's `text` reached Anthropic as "5" and Ollama as an empty prompt). Which types a role or a provider takes is the
 * provider's to say; a type OpenAI does not have passes to it.
 */
const contentPart: JSONSchema = {
  type: 'object', required: ['type'], properties: { type: { type: 'string' } },
  allOf: [
    partOf('text', stringField('text')),
    partOf('refusal', stringField('refusal')),
    partOf('image_url', { required: ['image_url'], properties: { image_url: { type: 'object', ...stringField('url') } } }),
    partOf('input_audio', { required: ['input_audio'], properties: { input_audio: { type: 'object', required: ['data', 'format'], properties: { data: { type: 'string' }, format: { type: 'string' } } } } }),
    partOf('file', { required: ['file'], properties: { file: { type: 'object', properties: { file_data: { type: 'string' }, file_id: { type: 'string' }, filename: { type: 'string' } } } } }),
  ],
}
// One type list rather than anyOf, so that an error names the field inside a part (messages[0].content[0].text), not the content.
const content: JSONSchema = { type: ['string', 'array', 'null'], items: contentPart }

const message: JSONSchema = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
    content,
    name: { type: 'string' },
    tool_call_id: { type: 'string' },
    tool_calls: {
      type: 'array',
      items: {
        type: 'object', required: ['id', 'function'],
        properties: {
          id: { type: 'string' }, type: { const: 'function' },
          function: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, arguments: { type: 'string' } } },
        },
      },
    },
  },
  allOf: [
    // Only an assistant turn (one that made tool calls) may have content null, as in OpenAI's API.
    { if: { properties: { role: { const: 'tool' } } }, then: { required: ['tool_call_id', 'content'], properties: { content: { type: ['string', 'array'] } } } },
    { if: { properties: { role: { enum: ['system', 'developer', 'user', 'function'] } } }, then: { required: ['content'], properties: { content: { type: ['string', 'array'] } } } },
  ],
}

/**
 * `response_format.json_schema` as OpenAI takes it: a `name` it requires (letters, digits, `_` and `-`, at most 64), and
 * a `schema` that is an object (a string went to Anthropic as the schema, to Gemini as plain JSON mode, to Ollama as
 * its `format`).
 */
const jsonSchemaFormat: JSONSchema = {
  type: 'object', required: ['name'],
  properties: {
    name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
    description: { type: 'string' },
    schema: { type: 'object' },
    strict: { type: ['boolean', 'null'] },
  },
}

/** A function definition: `tools[i].function`, and the deprecated `functions[i]` (checked the same). */
const functionDefinition: JSONSchema = {
  type: 'object', required: ['name'],
  properties: { name: { type: 'string', minLength: 1 }, description: { type: 'string' }, parameters: { type: 'object' } },
}

export const chatRequestSchema: JSONSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: modelName,
    messages: { type: 'array', minItems: 1, items: message },
    stream: { type: ['boolean', 'null'] },
    stream_options: { type: ['object', 'null'], properties: { include_usage: { type: 'boolean' } } },
    temperature: num(0, 2),
    top_p: num(0, 1),
    max_tokens: posInt,
    max_completion_tokens: posInt,
    n: { type: ['integer', 'null'], minimum: 1, maximum: 128 },
    stop: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 16 }, { type: 'null' }] },
    presence_penalty: num(-2, 2),
    frequency_penalty: num(-2, 2),
    seed: { type: ['integer', 'null'], minimum: -MAX_INT, maximum: MAX_INT },
    user: { type: 'string' },
    metadata: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
    tools: {
      type: 'array',
      items: {
        type: 'object', required: ['type', 'function'],
        properties: { type: { const: 'function' }, function: functionDefinition },
      },
    },
    tool_choice: { anyOf: [{ enum: ['none', 'auto', 'required'] }, { type: 'object', required: ['type'] }] },
    // OpenAI's deprecated function calling (providers/shared/legacy-functions.ts): null is its absence.
    functions: { type: ['array', 'null'], items: functionDefinition },
    function_call: {
      type: ['string', 'object', 'null'],
      allOf: [
        { if: { type: 'string' }, then: { enum: ['none', 'auto'] } },
        { if: { type: 'object' }, then: { required: ['name'], properties: { name: { type: 'string', minLength: 1 } } } },
      ],
    },
    parallel_tool_calls: { type: 'boolean' },
    response_format: {
      type: 'object', required: ['type'],
      properties: { type: { enum: ['text', 'json_object', 'json_schema'] }, json_schema: jsonSchemaFormat },
      if: { properties: { type: { const: 'json_schema' } }, required: ['type'] }, then: { required: ['json_schema'] },
    },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
  },
}

export const embeddingRequestSchema: JSONSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: modelName,
    input: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'string' } },
        { type: 'array', minItems: 1, items: { type: 'integer', minimum: 0, maximum: MAX_INT } },
        { type: 'array', minItems: 1, items: { type: 'array', items: { type: 'integer', minimum: 0, maximum: MAX_INT } } },
      ],
    },
    encoding_format: { enum: ['float', 'base64'] },
    dimensions: { type: 'integer', minimum: 1, maximum: MAX_INT },
    user: { type: 'string' },
  },
}

const validateChatSchema = compileSchema<ChatRequest>(chatRequestSchema)

/**
 * Rules across fields, which the schema cannot state. `max_tokens` and `max_completion_tokens` with different values:
 * which ceiling the client meant is unknown, and each provider would pick one (OpenAI refuses the two at once:
 * "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported."). The same value twice is
 * accepted: some clients send both, for servers that know only one of them.
 */
function crossFieldProblems(req: ChatRequest): readonly string[] {
  const { max_tokens: a, max_completion_tokens: b } = req
  if (a != null && b != null && a !== b) return [`max_tokens: differs from max_completion_tokens (${a} and ${b}): setting both at once is not supported; send max_completion_tokens only`]
  return NONE
}

const NONE: readonly string[] = []
/** Problems of the last validateChatRequest call found by crossFieldProblems (the schema's are validateChatSchema's). */
let crossField: readonly string[] = NONE

/** The chat request schema, then the rules across fields. */
export const validateChatRequest: Validator<ChatRequest> = Object.assign(
  (value: unknown): value is ChatRequest => {
    crossField = NONE
    if (!validateChatSchema(value)) return false
    crossField = crossFieldProblems(value)
    return crossField.length === 0
  },
  { errors: (prefix = ''): string[] => (crossField.length > 0 ? crossField.map((e) => (prefix === '' ? e : `${prefix}.${e}`)) : validateChatSchema.errors(prefix)) },
)
export const validateEmbeddingRequest = compileSchema<EmbeddingRequest>(embeddingRequestSchema)
