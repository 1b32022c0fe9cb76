// worker.test.mjs — the official OpenAI SDK (npm `openai`) against `semstream worker`, as a
// user would drive it: chat completions (plain and streaming), legacy completions (stop
// lists, n, echo, logprobs, streaming), embeddings (the SDK asks for base64 by default
// and decodes them), and the errors the SDK turns into its exception classes.
// Run by tests/sdk/run.sh (node --test), which starts the workers and sets:
//   SS_CHAT_URL   a worker serving a chat model (ChatML template), bearer token SS_TOKEN
//   SS_BASE_URL   a worker serving stories260K (no template), no token
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";

const chat = new OpenAI({ baseURL: process.env.SS_CHAT_URL + "/v1", apiKey: process.env.SS_TOKEN, maxRetries: 0 });
const base = new OpenAI({ baseURL: process.env.SS_BASE_URL + "/v1", apiKey: "unused", maxRetries: 0 });

test("models.list names the model and its chat template", async () => {
  const page = await chat.models.list();
  const ids = page.data.map((m) => m.id);
  assert.ok(ids.includes("tinychat"), ids.join(","));
  assert.equal(page.data[0].owned_by, "semstream");
  assert.equal(page.data[0].semstream_chat_template, "chatml");
});

test("chat.completions: an answer, and the same answer streamed", async () => {
  const params = {
    model: "tinychat",
    messages: [
      { role: "system", content: "You answer briefly." },
      { role: "user", content: "Name a colour." },
    ],
    max_tokens: 12,
    temperature: 0,
  };
  const r = await chat.chat.completions.create(params);
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);

  const stream = await chat.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = "", finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks >= 3, `only ${chunks} chunks`);
  assert.equal(text, r.choices[0].message.content);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.deepEqual(usage, r.usage);
});

test("chat.completions: logprobs with top_logprobs", async () => {
  const r = await chat.chat.completions.create({
    model: "tinychat",
    messages: [{ role: "user", content: "Hello" }],
    max_tokens: 6,
    temperature: 0,
    logprobs: true,
    top_logprobs: 4,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((t) => t.token).join(""), r.choices[0].message.content);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 4);
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs[0].logprob, t.logprob); // greedy: the chosen token is the best
  }
});

test("completions: stop lists, n, echo, logprobs, streaming", async () => {
  const full = await base.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 30, temperature: 0 });
  const text = full.choices[0].text;
  const stop = text.slice(12, 15);
  const cut = await base.completions.create({
    model: "stories260K", prompt: "Once upon a time", max_tokens: 30, temperature: 0, stop: ["@@@", stop],
  });
  assert.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, "stop");

  const many = await base.completions.create({
    model: "stories260K", prompt: ["Lily", "Tom"], n: 2, max_tokens: 5, temperature: 1, seed: 3,
  });
  assert.deepEqual(many.choices.map((c) => c.index), [0, 1, 2, 3]);

  const echo = await base.completions.create({ model: "stories260K", prompt: "The dog", max_tokens: 3, echo: true, temperature: 0 });
  assert.ok(echo.choices[0].text.startsWith("The dog"));

  const lp = await base.completions.create({ model: "stories260K", prompt: "The dog", max_tokens: 4, logprobs: 3, temperature: 0 });
  const l = lp.choices[0].logprobs;
  assert.equal(l.tokens.length, 4);
  assert.equal(l.tokens.join(""), lp.choices[0].text);
  assert.equal(Object.keys(l.top_logprobs[0]).length, 3);

  const stream = await base.completions.create({
    model: "stories260K", prompt: "Once upon a time", max_tokens: 30, temperature: 0, stop: ["@@@", stop], stream: true,
  });
  let s = "";
  for await (const chunk of stream) s += chunk.choices[0]?.text ?? "";
  assert.equal(s, cut.choices[0].text);
});

test("response_format json_schema: a value cut at max_tokens closes, parses and says length", async () => {
  const response_format = {
    type: "json_schema",
    json_schema: {
      name: "person", strict: true,
      schema: { type: "object", properties: { who: { type: "string" }, age: { type: "integer" } },
                required: ["who", "age"], additionalProperties: false },
    },
  };
  const params = { model: "tinychat", messages: [{ role: "user", content: "Who is it?" }], max_tokens: 20,
                   temperature: 0, response_format };
  const cut = await chat.chat.completions.create(params);
  const v = JSON.parse(cut.choices[0].message.content); // always parses: the grammar closes it in time
  assert.equal(typeof v.who, "string");
  assert.ok(Number.isInteger(v.age));
  assert.equal(cut.usage.completion_tokens, 20);
  assert.equal(cut.choices[0].finish_reason, "length");
  const stream = await chat.chat.completions.create({ ...params, stream: true });
  let text = "", finish = null;
  for await (const chunk of stream)
    for (const c of chunk.choices) {
      text += c.delta.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  assert.equal(text, cut.choices[0].message.content);
  assert.equal(finish, "length");
  // legacy completions on stories260K: cut at 20 tokens -> length; room to finish -> stop, fewer tokens
  const lc = await base.completions.create({ model: "stories260K", prompt: "Tell me about the cat", max_tokens: 20,
                                             temperature: 0, response_format });
  JSON.parse(lc.choices[0].text);
  assert.equal(lc.usage.completion_tokens, 20);
  assert.equal(lc.choices[0].finish_reason, "length");
  const full = await base.completions.create({ model: "stories260K", prompt: "Tell me about the cat", max_tokens: 200,
                                               temperature: 0, response_format });
  JSON.parse(full.choices[0].text);
  assert.ok(full.usage.completion_tokens < 200);
  assert.equal(full.choices[0].finish_reason, "stop");
});

test("embeddings: base64 (the SDK's default) decodes to the floats", async () => {
  const input = ["a little dog", "the sea at night"];
  const b64 = await base.embeddings.create({ model: "stories260K", input });
  const flt = await base.embeddings.create({ model: "stories260K", input, encoding_format: "float" });
  assert.equal(b64.data.length, 2);
  for (let i = 0; i < 2; i++) {
    const a = b64.data[i].embedding, f = flt.data[i].embedding;
    assert.equal(a.length, f.length);
    assert.ok(a.length >= 8);
    for (let k = 0; k < a.length; k++) assert.ok(Math.abs(a[k] - f[k]) < 1e-6, `${i}:${k} ${a[k]} vs ${f[k]}`);
  }
});

test("errors come back as the SDK's exceptions", async () => {
  await assert.rejects(
    base.completions.create({ model: "gpt-4o-mini", prompt: "x" }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === "model_not_found",
  );
  await assert.rejects(
    base.completions.create({ model: "stories260K", prompt: "x", max_tokens: 1e300 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "max_tokens",
  );
  await assert.rejects(
    base.chat.completions.create({ model: "stories260K", messages: [{ role: "user", content: "hi" }] }),
    (e) => e instanceof OpenAI.BadRequestError && /no chat template/.test(e.message),
  );
  const wrong = new OpenAI({ baseURL: process.env.SS_CHAT_URL + "/v1", apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});
