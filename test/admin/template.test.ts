/** The template engine: substitution only, no code; syntax errors name the field; missing variables listed. */
import { describe, expect, it } from 'vitest'
import { pickVersion, type SnapshotDeployment } from '../../admin/snapshot.ts'
import { compileTemplate, MAX_RENDERED_CHARS, renderTemplate, TemplateSyntaxError, TemplateTooLargeError, TemplateVariablesError } from '../../admin/template.ts'

function render(t: unknown, vars: Record<string, unknown>): unknown {
  return renderTemplate(compileTemplate(t), vars)
}

describe('templates', () => {
  it('a render past MAX_RENDERED_CHARS stops there: 200,000 tags of a 1,000-character variable would be 200 million characters', () => {
    const t = compileTemplate('{{x}}'.repeat(200_000))
    expect(() => renderTemplate(t, { x: 'y'.repeat(1_000) })).toThrow(TemplateTooLargeError)
    // Counted over all messages and parts together; up to the limit it renders.
    const parts = compileTemplate([{ role: 'system', content: '{{x}}' }, { role: 'user', content: [{ type: 'text', text: '{{x}}' }] }])
    expect(() => renderTemplate(parts, { x: 'y'.repeat(MAX_RENDERED_CHARS / 2 + 1) })).toThrow(TemplateTooLargeError)
    expect(renderTemplate(parts, { x: 'y'.repeat(MAX_RENDERED_CHARS / 2) })).toHaveLength(2)
  })

  it('substitutes {{name}} and {{ name }}, dotted paths and array indexes', () => {
    expect(render('Hi {{name}} and {{ name }}!', { name: 'Ada' })).toEqual([{ role: 'user', content: 'Hi Ada and Ada!' }])
    expect(render('{{user.address.city}} / {{items.1}}', { user: { address: { city: 'Paris' } }, items: ['a', 'b'] })).toEqual([{ role: 'user', content: 'Paris / b' }])
  })

  it('renders values as text: numbers, booleans, null as empty, objects as JSON', () => {
    expect(render('{{n}} {{b}} [{{z}}] {{o}}', { n: 1.5, b: false, z: null, o: { a: [1] } })).toEqual([{ role: 'user', content: '1.5 false [] {"a":[1]}' }])
  })

  it('templates every message and text part; other parts pass unchanged', () => {
    const t = [
      { role: 'system', content: 'You help {{team}}.' },
      { role: 'user', name: 'u1', content: [{ type: 'text', text: 'Look at {{what}}' }, { type: 'image_url', image_url: { url: 'https://x/{{what}}.png' } }] },
    ]
    expect(render(t, { team: 'docs', what: 'this' })).toEqual([
      { role: 'system', content: 'You help docs.' },
      { role: 'user', name: 'u1', content: [{ type: 'text', text: 'Look at this' }, { type: 'image_url', image_url: { url: 'https://x/{{what}}.png' } }] },
    ])
    expect(compileTemplate(t).variables).toEqual(['team', 'what'])
  })

  it('lists every missing variable; own properties only (no prototype walk)', () => {
    const t = compileTemplate('{{a}} {{b.c}} {{constructor}} {{toString}} {{a}}')
    try {
      renderTemplate(t, { a: 1, b: {} })
      expect.fail('should throw')
    } catch (e) {
      expect(e).toBeInstanceOf(TemplateVariablesError)
      expect((e as TemplateVariablesError).missing).toEqual(['b.c', 'constructor', 'toString'])
    }
    expect(() => renderTemplate(compileTemplate('{{__proto__.x}}'), {})).toThrow(TemplateVariablesError)
  })

  it('has no code execution, helpers or expressions: such tags are syntax errors naming the field', () => {
    const bad = ['{{#if x}}y{{/if}}', '{{ a + b }}', '{{ fn() }}', '{{ constructor.constructor("x")() }}', '{{> partial}}', '{{ a | upper }}', '{{}}', '{{ 1abc }}', 'open {{ x', '{{{ x }}}']
    for (const t of bad) {
      expect(() => compileTemplate(t), t).toThrow(TemplateSyntaxError)
    }
    try {
      compileTemplate([{ role: 'user', content: 'ok' }, { role: 'user', content: [{ type: 'text', text: 'bad {{ x.y( }}' }] }])
      expect.fail('should throw')
    } catch (e) {
      expect((e as TemplateSyntaxError).field).toBe('template[1].content[0].text')
    }
  })

  it('\\{{ writes a literal {{; text without tags is untouched', () => {
    expect(render('literal \\{{ name }} and {{name}}', { name: 'x' })).toEqual([{ role: 'user', content: 'literal {{ name }} and x' }])
    expect(render('no tags: } { }} {', {})).toEqual([{ role: 'user', content: 'no tags: } { }} {' }])
  })

  it('a backslash can precede a substituted value: \\\\{{x}} writes one backslash, then the value', () => {
    // Regression: a backslash before {{ always escaped it, so no template could put a backslash right before a value
    // (a Windows path, LaTeX): the template text \\{{x}} rendered as the literal text \{{x}}, and x was no variable.
    expect(render('C:\\Users\\\\{{user}}', { user: 'ada' })).toEqual([{ role: 'user', content: 'C:\\Users\\ada' }])
    expect(compileTemplate('a\\\\{{x}}').variables).toEqual(['x'])
    // In a run of backslashes before {{, each pair writes one; an odd one left over escapes the {{.
    expect(render('\\\\\\{{x}} \\\\\\\\{{x}} \\{{x}}', { x: 'V' })).toEqual([{ role: 'user', content: '\\{{x}} \\\\V {{x}}' }])
    // Backslashes elsewhere are text, as they were.
    expect(render('a\\b \\\\ {{x}}\\', { x: 'V' })).toEqual([{ role: 'user', content: 'a\\b \\\\ V\\' }])
  })
})

describe('traffic weights', () => {
  const v = (id: string): never => ({ id }) as never
  const d = { traffic: [{ version: v('a'), weight: 90, label: 'stable' }, { version: v('b'), weight: 10, label: 'canary' }], totalWeight: 100 } as unknown as SnapshotDeployment

  it('picks by cumulative weight', () => {
    expect(pickVersion(d, 0).label).toBe('stable')
    expect(pickVersion(d, 0.899).label).toBe('stable')
    expect(pickVersion(d, 0.9).label).toBe('canary')
    expect(pickVersion(d, 0.9999).label).toBe('canary')
  })

  it('splits about as configured', () => {
    let canary = 0
    for (let i = 0; i < 10_000; i++) if (pickVersion(d).label === 'canary') canary++
    expect(canary).toBeGreaterThan(800)
    expect(canary).toBeLessThan(1200)
  })
})
