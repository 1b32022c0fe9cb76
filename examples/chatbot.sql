-- chatbot.sql — a support assistant kept up to date by LLM_GENERATE.
--
-- conversation_events carries the latest user message of each conversation
-- (an update replaces the previous message of the same conversation); the
-- support_docs stream is the knowledge base. The `answers` view keeps one
-- response per conversation: when a conversation changes it retrieves the 3
-- most relevant documents and generates an answer; when a document changes,
-- only the answers that used it are regenerated.

-- Retrieval compares a message with the articles through the sentence encoder
-- (the Universal Sentence Encoder lite, run in C from data/use.bin): it puts
-- "My wifi keeps disconnecting" next to "RouterX keeps dropping Wi-Fi", which the
-- default word vectors do not (docs/SEMANTIC.md "Embedders").
SET embedder = 'use';

CREATE STREAM conversation_events (
    conversation_id TEXT KEY,
    customer        TEXT,
    product         TEXT,
    message         TEXT
) WITH (topic = 'conversation_events', format = 'json');

CREATE STREAM support_docs (
    doc_id  TEXT KEY,
    product TEXT,
    title   TEXT,
    body    TEXT
) WITH (topic = 'support_docs', format = 'json');

CREATE CONTINUOUS VIEW answers WITH (sink_topic = 'answers') AS
LLM_GENERATE(
    prompt      = 'You are a support assistant for {product}. Answer the customer using the documents. Customer: {message}',
    context     = STREAM(conversation_events),
    data_source = STREAM(support_docs),
    key         = conversation_id,
    retrieve    = 3,
    maintain    = 'recompute',
    max_tokens  = 96
);
