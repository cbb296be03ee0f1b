/**
 * A lookup table without a prototype. Tables read with a key a client or an upstream chose (a request's field
 * names, a tool_choice type, a finish reason) must not find Object.prototype's members: on a plain object literal,
 * `PARAMS['constructor']` is the Object function and `PARAMS['__proto__']` the prototype itself.
 */
export function table<T>(entries: Record<string, T>): Readonly<Record<string, T>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, T>, entries))
}
