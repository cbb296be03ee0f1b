/**
 * Tool schemas, tool histories and tool sets that a provider would refuse as the client sent them, through the running
 * gateway to the google, ollama and anthropic mocks (each refuses what its provider refuses): translated where the
 * gateway can say the same thing in the provider's terms, else a 400 naming the client's field and the provider.
 */
import { describe, expect, it } from 'vitest'
import { translatedProvidersForFile } from '../helpers/translated-providers.ts'

const t = translatedProvidersForFile()

describe('google: tool parameters become a Schema Gemini takes', () => {
  it('an array without items, properties without a type, a type list with properties and unknown required names (each was Gemini\'s 400)', async () => {
    const parameters = {
      type: 'object',
      properties: {
        tags: { type: 'array', description: 'labels' },
        filter: { properties: { field: { type: 'string' } } },
        value: { type: ['object', 'string'], properties: { op: { type: 'string' } } },
      },
      required: ['tags', 'missing'],
    }
    const { status, json } = await t().chat('google', { tools: [{ type: 'function', function: { name: 'search', parameters } }], messages: [{ role: 'user', content: 'echo hi' }] })
    expect(status, JSON.stringify(json)).toBe(200)
    expect(t().requests('google')[0]!.body.tools[0].functionDeclarations[0].parameters).toEqual({
      type: 'object',
      properties: {
        tags: { type: 'array', description: 'labels', items: {} },
        filter: { type: 'object', properties: { field: { type: 'string' } } },
        value: { anyOf: [{ type: 'object', properties: { op: { type: 'string' } } }, { type: 'string' }] },
      },
      required: ['tags'],
    })
  })
})
