/**
 * Regression: ajv kept every schema it ever compiled (its `_cache` keyed by the schema object, its scope holding each
 * validate function), and prompt version creation, every deployment write (default variables against the versions'
 * schemas) and every snapshot reload of a version compile a schema read from the request or the database, a new object
 * each time: a long-running control plane grew without bound.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import { compileSchema } from '../../gateway/validate.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function schemaNo(i: number): Record<string, unknown> {
  return { type: 'object', properties: { [`v${i}`]: { type: 'string', pattern: `^x${i}$` } } }
}

async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 5 && ref.deref() !== undefined; i++) { await new Promise((r) => setImmediate(r)); gc() }
  return ref.deref() === undefined
}

describe('compileSchema memory', () => {
  it('compiles a schema once per content: the same schema again, as a new object, gives the same validator', () => {
    const a = compileSchema(schemaNo(-1))
    const b = compileSchema(schemaNo(-1))
    expect(b).toBe(a)
    expect(a({ 'v-1': 'x-1' })).toBe(true)
    expect(a({ 'v-1': 'y' })).toBe(false)
    expect(a.errors('variables')).toEqual(['variables.v-1: must match pattern "^x-1$"'])
  })

  it('does not keep a schema (nor its validator) alive once nobody holds the validator and many others were compiled', async () => {
    let schema: Record<string, unknown> | undefined = schemaNo(0)
    const ref = new WeakRef(schema)
    let v: ((x: unknown) => boolean) | undefined = compileSchema(schema)
    expect(v({ v0: 'x0' })).toBe(true)
    schema = undefined
    v = undefined
    for (let i = 1; i <= 5000; i++) compileSchema(schemaNo(i))
    expect(await collected(ref)).toBe(true)
  })
})
