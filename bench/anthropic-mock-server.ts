/** Runs the Anthropic wire-format mock as its own process for the benchmarks (MOCK_PORT; prints {"url"} when ready). */
import { startAnthropicMock } from '../test/helpers/anthropic-mock.ts'

const mock = await startAnthropicMock({ port: Number(process.env["MOCK_PORT"] ?? 9200), record: false })
process.stdout.write(JSON.stringify({ url: mock.url }) + '\n')
const stop = (): void => { void mock.close().then(() => process.exit(0)) }
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
