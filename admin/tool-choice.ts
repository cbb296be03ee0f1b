/**
 * Whether a version's tools can honour a tool_choice. The tools come from the version alone (neither a deployment
 * nor a call can add any), so a `tool_choice` of 'required' without tools, or naming a function none of them is,
 * could only fail at the provider on every execution: refused when the version is created (its `params`), when a
 * deployment is written (its `config.parameters`, against each version it serves) and at execute (the call's
 * `parameters`), naming the field.
 */

function functionNames(tools: readonly unknown[] | null | undefined): Set<string> {
  const names = new Set<string>()
  for (const t of tools ?? []) {
    const fn = t !== null && typeof t === 'object' ? (t as Record<string, unknown>)['function'] : undefined
    const name = fn !== null && typeof fn === 'object' ? (fn as Record<string, unknown>)['name'] : undefined
    if (typeof name === 'string') names.add(name)
  }
  return names
}

/** Why `choice` cannot be honoured with `tools`, or undefined when it can ('none', 'auto' and other shapes pass). */
export function toolChoiceProblem(choice: unknown, tools: readonly unknown[] | null | undefined): string | undefined {
  const none = !tools || tools.length === 0
  if (choice === 'required') return none ? "is 'required' but the version has no tools" : undefined
  if (choice === null || typeof choice !== 'object') return undefined
  const c = choice as Record<string, unknown>
  const fn = c['function']
  const name = c['type'] === 'function' && fn !== null && typeof fn === 'object' ? (fn as Record<string, unknown>)['name'] : undefined
  if (typeof name !== 'string') return undefined
  if (none) return `names function ${JSON.stringify(name.slice(0, 100))} but the version has no tools`
  if (!functionNames(tools).has(name)) return `names function ${JSON.stringify(name.slice(0, 100))}, which is not one of the version's tools (${[...functionNames(tools)].slice(0, 10).join(', ')})`
  return undefined
}
