/** Alerts: budget thresholds, error rates and providers down, fired once per period to signed webhooks. */
export { AlertManager, type AlertManagerOptions, type BudgetUsageEvent, type FiredAlert } from './manager.ts'
export { alertsConfigSchema, parseAlertsConfig, type AlertsConfig, type AlertRule, type WebhookConfig } from './config.ts'
export { SIGNATURE_HEADER, signatureHeader, verifySignature } from './sign.ts'
