import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import OpenAI from 'openai';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startOpenAIMock, parseFault } from './openai-mock.ts';
import type { OpenAIMock } from './openai-mock.ts';

const AUTH = { authorization: 'Bearer sk-test', 'content-type': 'application/json' };

describe('openai-mock', () => {
  let mock: OpenAIMock;
  let client: OpenAI;

  beforeAll(async () => {
    mock = await startOpenAIMock();
    client = new OpenAI({ apiKey: 'sk-test', baseURL: mock.url, maxRetries: 0, timeout: 10_000 });
  });
  afterAll(async () => {
    await mock.close();
  });
  beforeEach(() => {
    mock.reset();
  });

  it('listens on 127.0.0.1 with /v1 in the url', () => {
    expect(mock.url).toBe(`http://127.0.0.1:${mock.port}/v1`);
  });

  it('non-streaming text completion', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hello there' }],
    });
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.object).toBe('chat.completion');
    expect(r.model).toBe('gpt-4o-mini');
    expect(r.system_fingerprint).toBeTypeOf('string');
    const c = r.choices[0];
    expect(c?.message.role).toBe('assistant');
    expect(c?.message.content).toBe(Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' '));
    expect(c?.message.refusal).toBeNull();
    expect(c?.finish_reason).toBe('stop');
    expect(r.usage).toMatchObject({
      prompt_tokens: 3, // 11 chars / 4 rounded up
      completion_tokens: 12,
      total_tokens: 15,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
    expect(mock.requests).toHaveLength(1);
    expect(mock.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', aborted: false, status: 200 });
    expect(mock.requests[0]?.body.model).toBe('gpt-4o-mini');
  });

  it('echo, x-mock-tokens, max_tokens and tool-result replies', async () => {
    const echo = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'echo hi there' }] });
    expect(echo.choices[0]?.message.content).toBe('echo: hi there');

    const three = await client.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'x-mock-tokens': '3' } },
    );
    expect(three.choices[0]?.message.content).toBe('tok0 tok1 tok2');
    expect(three.usage?.completion_tokens).toBe(3);

    const capped = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 2 });
    expect(capped.choices[0]?.message.content).toBe('tok0 tok1');
    expect(capped.choices[0]?.finish_reason).toBe('length');

    const tool = await client.chat.completions.create({
      model: 'm',
      messages: [
        { role: 'user', content: 'call tool' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      ],
    });
    expect(tool.choices[0]?.message.content).toBe('tool result: sunny');
  });

  it('refuses an empty content array and an assistant message with neither content nor tool calls, as OpenAI does', async () => {
    const post = (messages: unknown[]) => fetch(`${mock.url}/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-test', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages }) })
    const empty = await post([{ role: 'system', content: [] }, { role: 'user', content: 'hi' }])
    expect(empty.status).toBe(400)
    expect(((await empty.json()) as { error: { param: string } }).error.param).toBe('messages[0].content')
    const bare = await post([{ role: 'user', content: 'hi' }, { role: 'assistant', content: null }])
    expect(bare.status).toBe(400)
    expect(((await bare.json()) as { error: { message: string } }).error.message).toContain("expected a string, got null")
    expect((await post([{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c', content: 'x' }])).status).toBe(200)
  });

  it('refuses more than 4 stop sequences, as OpenAI does; an OpenAI-compatible server (limits: false) takes them', async () => {
    const post = (url: string, stop: string[]) => fetch(`${url}/chat/completions`, { method: 'POST', headers: AUTH, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stop }) })
    const five = await post(mock.url, ['a', 'b', 'c', 'd', 'e'])
    expect(five.status).toBe(400)
    expect(((await five.json()) as { error: { param: string; message: string } }).error).toMatchObject({ param: 'stop', message: expect.stringContaining('maximum length 4') })
    expect((await post(mock.url, ['a', 'b', 'c', 'd'])).status).toBe(200)
    const compat = await startOpenAIMock({ limits: false })
    try { expect((await post(compat.url, ['a', 'b', 'c', 'd', 'e'])).status).toBe(200) } finally { await compat.close() }
  });

  it('refuses a tool name outside ^[a-zA-Z0-9_-]+$ or longer than 64, as OpenAI does', async () => {
    const post = (name: string) => fetch(`${mock.url}/chat/completions`, { method: 'POST', headers: AUTH, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'ok' } }, { type: 'function', function: { name } }] }) })
    for (const [name, says] of [['my.tool', 'does not match pattern'], ['x'.repeat(65), 'maximum length 64']] as const) {
      const r = await post(name)
      expect(r.status).toBe(400)
      expect(((await r.json()) as { error: { param: string; message: string } }).error).toMatchObject({ param: 'tools[1].function.name', message: expect.stringContaining(says) })
    }
    expect((await post('get-weather_2')).status).toBe(200)
  });

  it('non-streaming tool call', async () => {
    const r = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'please call tool now' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    });
    const c = r.choices[0];
    expect(c?.finish_reason).toBe('tool_calls');
    expect(c?.message.content).toBeNull();
    const call = c?.message.tool_calls?.[0];
    expect(call?.id).toMatch(/^call_/);
    expect(call?.type).toBe('function');
    if (call?.type !== 'function') throw new Error('expected function call');
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' });
  });

  it('streaming with include_usage: text reassembles and final chunk has usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hello there' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let role: string | undefined;
    let finish: string | null | undefined;
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk);
      const ch = chunk.choices[0];
      if (ch?.delta.role) role = ch.delta.role;
      text += ch?.delta.content ?? '';
      if (ch?.finish_reason) finish = ch.finish_reason;
    }
    expect(role).toBe('assistant');
    expect(text).toBe(Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' '));
    expect(finish).toBe('stop');
    expect(chunks).toHaveLength(1 + 12 + 1 + 1);
    const last = chunks[chunks.length - 1];
    expect(last?.choices).toEqual([]);
    expect(last?.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 12, total_tokens: 15 });
    for (const c of chunks.slice(0, -1)) {
      expect(c.usage).toBeNull();
      expect(c.object).toBe('chat.completion.chunk');
      expect(c.id).toBe(chunks[0]?.id);
      expect(c.model).toBe('gpt-4o-mini');
      expect(c.system_fingerprint).toBeTypeOf('string');
    }
  });

  it('streaming without include_usage has no usage field; raw wire ends with [DONE]', async () => {
    const res = await fetch(`${mock.url}/chat/completions`, {
      method: 'POST',
      headers: { ...AUTH, 'x-mock-tokens': '2' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true }),
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const raw = await res.text();
    const events = raw.split('\n\n').filter((e) => e !== '');
    expect(events).toHaveLength(1 + 2 + 1 + 1);
    expect(events[events.length - 1]).toBe('data: [DONE]');
    for (const e of events.slice(0, -1)) {
      expect(e.startsWith('data: ')).toBe(true);
      expect(JSON.parse(e.slice(6))).not.toHaveProperty('usage');
    }
  });

  it('streamed tool call reassembly', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'call tool' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }],
      stream: true,
    });
    let id = '';
    let name = '';
    let args = '';
    let finish: string | null | undefined;
    let argDeltas = 0;
    for await (const chunk of stream) {
      const ch = chunk.choices[0];
      for (const tc of ch?.delta.tool_calls ?? []) {
        expect(tc.index).toBe(0);
        if (tc.id) id = tc.id;
        if (tc.function?.name) name += tc.function.name;
        if (tc.function?.arguments) {
          args += tc.function.arguments;
          argDeltas++;
        }
      }
      if (ch?.finish_reason) finish = ch.finish_reason;
    }
    expect(id).toMatch(/^call_/);
    expect(name).toBe('get_weather');
    expect(argDeltas).toBeGreaterThan(1);
    expect(JSON.parse(args)).toEqual({ city: 'Paris' });
    expect(finish).toBe('tool_calls');
  });

  it('streaming works with the SDK helper stream().finalChatCompletion()', async () => {
    const runner = client.chat.completions.stream({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'echo a b c' }],
      stream_options: { include_usage: true },
    });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]?.message.content).toBe('echo: a b c');
    expect(final.usage?.completion_tokens).toBe(4);
  });

  it('429 fault with Retry-After header and OpenAI error body', async () => {
    mock.fault = 'status:429,retryAfter:7';
    const err = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(429);
    expect(e.headers?.get('retry-after')).toBe('7');
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.type).toBe('requests');
    // fault stays until cleared
    const again = await client.models.list().catch((x: unknown) => x);
    expect(again).toBeInstanceOf(OpenAI.RateLimitError);
  });

  it('error codes choose status/type/param; header fault wins over property', async () => {
    mock.fault = 'status:500';
    const err = await client.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-fault': 'code:context_length_exceeded' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.code).toBe('context_length_exceeded');
    expect(e.param).toBe('messages');
    expect(e.type).toBe('invalid_request_error');

    const res = await fetch(`${mock.url}/chat/completions`, { method: 'POST', headers: AUTH, body: '{}' });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error: { message: expect.any(String), type: 'server_error', param: null, code: 'server_error' },
    });

    const bad = await fetch(`${mock.url}/models`, { headers: { ...AUTH, 'x-mock-fault': 'bogus:1' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('mock_invalid_fault');
  });

  it('times:1 fault fails once then succeeds', async () => {
    mock.fault = { status: 503, times: 1 };
    const err = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect(mock.fault).toBeNull();
    const ok = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(ok.choices[0]?.finish_reason).toBe('stop');

    // header variant: counted per header value
    const h = { headers: { 'x-mock-fault': 'status:500 times:1' } };
    await expect(client.models.list(h)).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    const models = await client.models.list(h);
    expect(models.data.map((m) => m.id)).toContain('gpt-4o');
  });

  it('SDK retries honour a times fault (fail once then succeed)', async () => {
    const retrying = new OpenAI({ apiKey: 'sk-test', baseURL: mock.url, maxRetries: 2 });
    mock.fault = 'status:429,retryAfterMs:10,times:1';
    const r = await retrying.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(r.choices[0]?.message.content).toContain('tok0');
    expect(mock.requests.map((q) => q.status)).toEqual([429, 200]);
  });

  it('cutAfter produces a client-side error / incomplete stream', async () => {
    mock.fault = 'cutAfter:3';
    let text = '';
    let finish: string | null | undefined;
    let error: unknown;
    try {
      const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true });
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        finish ??= chunk.choices[0]?.finish_reason;
      }
    } catch (e) {
      error = e;
    }
    expect(finish ?? null).toBeNull();
    expect(text).toBe('tok0 tok1 tok2');
    expect(error).toBeDefined();
    expect(mock.requests[0]?.aborted).toBe(false); // server-side cut is not a client abort
  });

  it('malformedAfter injects a bad event; noDone omits [DONE]', async () => {
    const post = (fault: string): Promise<string> =>
      fetch(`${mock.url}/chat/completions`, {
        method: 'POST',
        headers: { ...AUTH, 'x-mock-fault': fault, 'x-mock-tokens': '3' },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } }),
      }).then((r) => r.text());
    const mal = (await post('malformedAfter:1')).split('\n\n').filter(Boolean);
    expect(mal[2]).toBe('data: {not json');
    expect(mal[mal.length - 1]).toBe('data: [DONE]');
    expect(mal).toHaveLength(1 + 3 + 1 + 1 + 1 + 1);

    const nd = (await post('noDone')).split('\n\n').filter(Boolean);
    expect(nd).toHaveLength(1 + 3 + 1 + 1);
    expect(JSON.parse((nd[nd.length - 1] as string).slice(6)).usage.total_tokens).toBe(4);
    expect(nd.some((e) => e.includes('[DONE]'))).toBe(false);
  });

  it('reset fault destroys the connection before headers', async () => {
    mock.fault = 'reset,times:1';
    const err = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIConnectionError);
    expect(mock.requests[0]?.aborted).toBe(false);
    expect(mock.requests[0]?.status).toBeUndefined();
  });

  it('delayMs delays the first byte', async () => {
    const t0 = Date.now();
    await client.models.list({ headers: { 'x-mock-fault': 'delayMs:150' } });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });

  it('client abort during a slow stream is recorded and waitForAbort resolves', async () => {
    const ac = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true },
      { signal: ac.signal, headers: { 'x-mock-chunk-delay-ms': '50', 'x-mock-tokens': '100' } },
    );
    let n = 0;
    try {
      // the SDK either ends iteration quietly or throws APIUserAbortError after abort()
      for await (const _chunk of stream) {
        if (++n === 2) ac.abort();
      }
    } catch (e) {
      expect(e).toBeInstanceOf(OpenAI.APIUserAbortError);
    }
    expect(n).toBe(2);
    const rec = await mock.waitForAbort(2000);
    expect(rec.aborted).toBe(true);
    expect(rec.path).toBe('/v1/chat/completions');
    expect(rec.closedAt).toBeGreaterThanOrEqual(rec.receivedAt);
    expect(mock.requests[0]).toBe(rec);
  });

  it('client abort of a hung request is recorded', async () => {
    mock.fault = 'hang';
    const ac = new AbortController();
    const p = client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const rec = await mock.waitForAbort(2000);
    expect(rec.aborted).toBe(true);
    expect(rec.body.messages[0].content).toBe('x');
  });

  it('waitForAbort times out when nothing aborts', async () => {
    await expect(mock.waitForAbort(30)).rejects.toThrow(/no aborted request/);
  });

  it('validation: 401 without bearer, 400 invalid JSON, 400 missing model, 404 unknown path', async () => {
    const noAuth = await fetch(`${mock.url}/chat/completions`, { method: 'POST', body: '{}' });
    expect(noAuth.status).toBe(401);
    expect(((await noAuth.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');

    const badJson = await fetch(`${mock.url}/chat/completions`, { method: 'POST', headers: AUTH, body: '{nope' });
    expect(badJson.status).toBe(400);
    expect(await badJson.json()).toMatchObject({ error: { type: 'invalid_request_error', param: null, code: null } });
    expect(mock.requests[1]?.body).toBe('{nope');

    const noModel = await client.chat.completions.create({ messages: [] } as never).catch((e: unknown) => e);
    expect(noModel).toBeInstanceOf(OpenAI.BadRequestError);

    const unknown = await fetch(`${mock.url}/nope`, { headers: AUTH });
    expect(unknown.status).toBe(404);
  });

  it('embeddings (float and SDK default base64) and models', async () => {
    const a = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] });
    expect(a.object).toBe('list');
    expect(a.data).toHaveLength(2);
    expect(a.data[1]?.index).toBe(1);
    expect(a.data[0]?.embedding).toHaveLength(8);
    expect(a.usage.prompt_tokens).toBe(3); // ceil(5/4) + ceil(4/4)
    const b = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'alpha', encoding_format: 'float' });
    expect(b.data[0]?.embedding).toEqual(a.data[0]?.embedding);
    expect(b.data[0]?.embedding).not.toEqual(a.data[1]?.embedding);

    const models = await client.models.list();
    expect(models.data.length).toBeGreaterThan(2);
    expect(models.data[0]).toMatchObject({ object: 'model', owned_by: expect.any(String), created: expect.any(Number) });
  });

  it('parseFault DSL', () => {
    expect(parseFault('status:429,retryAfter:2,times:1')).toEqual({ status: 429, retryAfter: 2, times: 1 });
    expect(parseFault('503')).toEqual({ status: 503 });
    expect(parseFault('reset')).toEqual({ reset: true });
    expect(parseFault('delayMs=100 status=500')).toEqual({ delayMs: 100, status: 500 });
    expect(parseFault('code:rate_limit_exceeded')).toEqual({ code: 'rate_limit_exceeded', status: 429 });
    expect(parseFault('{"status":400,"message":"a, b"}')).toEqual({ status: 400, message: 'a, b' });
    expect(() => parseFault('status:200')).toThrow();
    expect(() => parseFault('whatever')).toThrow();
  });
});

describe('openai-mock lifecycle', () => {
  it('close() destroys hung and stalled sockets', async () => {
    const mock = await startOpenAIMock({ record: false });
    const client = new OpenAI({ apiKey: 'k', baseURL: mock.url, maxRetries: 0 });
    const hung = client.models.list({ headers: { 'x-mock-fault': 'hang' } }).catch((e: unknown) => e);
    const stalled = (async () => {
      const s = await client.chat.completions.create(
        { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true },
        { headers: { 'x-mock-fault': 'stallAfter:2' } },
      );
      let n = 0;
      for await (const _c of s) n++;
      return n;
    })().catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await mock.close();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await hung).toBeInstanceOf(Error);
    const s = await stalled;
    expect(typeof s === 'number' ? s : -1).not.toBe(1 + 2 + 2); // never completed normally
    expect(mock.requests).toHaveLength(0); // record:false
  });

  it('runs standalone and prints its url', async () => {
    const file = fileURLToPath(new URL('./openai-mock.ts', import.meta.url));
    const child = spawn(process.execPath, ['--experimental-strip-types', '--disable-warning=ExperimentalWarning', file], {
      env: { ...process.env, MOCK_PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const rl = createInterface({ input: child.stdout });
      const line = await new Promise<string>((resolve, reject) => {
        rl.once('line', resolve);
        child.once('exit', (code) => reject(new Error(`exited ${code}`)));
      });
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const client = new OpenAI({ apiKey: 'k', baseURL: url, maxRetries: 0 });
      const r = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'echo standalone' }] });
      expect(r.choices[0]?.message.content).toBe('echo: standalone');
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
