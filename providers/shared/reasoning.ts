/**
 * Reasoning controls across APIs. Pure.
 *
 * Two request fields ask a model to reason: OpenAI's `reasoning_effort` (canonical) and Anthropic's `thinking`
 * (`{type: 'enabled', budget_tokens}`, `{type: 'adaptive'}`, `{type: 'disabled'}`), which the /v1/messages dialect
 * keeps as a canonical extension. Each provider maps them to its own setting (docs/providers.md, "Reasoning").
 *
 * Effort and budget meet at the points Google documents for its OpenAI-compatible endpoint, which maps
 * `reasoning_effort` low/medium/high to Gemini thinking budgets of 1024, 8192 and 24576 tokens.
 */
import { GatewayError } from '../../gateway/errors.ts'

export type Thinking =
  | { readonly type: 'enabled'; readonly budget: number }
  | { readonly type: 'adaptive' }
  | { readonly type: 'disabled' }

/** Google's OpenAI-compatibility budgets for the three efforts every reasoning API shares. */
export const EFFORT_BUDGETS: Readonly<Record<'low' | 'medium' | 'high', number>> = { low: 1024, medium: 8192, high: 24576 }

/** Anthropic's minimum `budget_tokens`. */
export const MIN_THINKING_BUDGET = 1024

function invalid(param: string, reason: string): GatewayError {
  return new GatewayError('MCP_ERR_REQ_BODY_INVALID', { reason: `${param}: ${reason}` }, { param, details: 'request.body_invalid' })
}

/** Anthropic's `thinking` object, read and checked as Anthropic's API does (a 400 naming the field otherwise). */
export function readThinking(v: unknown): Thinking {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalid('thinking', 'must be an object')
  const t = v as Record<string, unknown>
  switch (t['type']) {
    case 'enabled': {
      const b = t['budget_tokens']
      if (typeof b !== 'number' || !Number.isInteger(b) || b < MIN_THINKING_BUDGET) {
        throw invalid('thinking.budget_tokens', `must be an integer of at least ${MIN_THINKING_BUDGET}`)
      }
      return { type: 'enabled', budget: b }
    }
    case 'adaptive': return { type: 'adaptive' }
    case 'disabled': return { type: 'disabled' }
    default: throw invalid('thinking.type', "must be 'enabled', 'adaptive' or 'disabled'")
  }
}

/**
 * The effort for a thinking budget: the largest of the documented effort budgets that fits in it (so the model is
 * not asked to think much more than the client allowed): below 8192 low, below 24576 medium, else high.
 */
export function effortForBudget(budget: number): 'low' | 'medium' | 'high' {
  return budget >= EFFORT_BUDGETS.high ? 'high' : budget >= EFFORT_BUDGETS.medium ? 'medium' : 'low'
}

/**
 * OpenAI's reasoning models, by name (the only thing a request says about its model): o1, o3, o4-mini, gpt-5.x,
 * gpt-oss. They take `reasoning_effort` and `max_completion_tokens` and refuse `max_tokens`; other chat models
 * refuse `reasoning_effort`.
 */
const REASONING_MODEL = /^(?:o[1-9]|gpt-5|gpt-oss)/i

export function isReasoningModel(model: string): boolean {
  return REASONING_MODEL.test(model)
}
