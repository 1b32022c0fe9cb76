-- support_triage.sql — the operators of structured output and embeddings over the
-- chatbot example's streams (examples/conversation_events.jsonl, support_docs.jsonl).
--
--   triage          SEM_CLASSIFY: each conversation's intent, one of four labels
--                   (one model request per new or changed message; deletes free)
--   ticket_facts    SEM_EXTRACT: typed columns out of the message, decoded under a
--                   JSON grammar so they always parse (one request per message)
--   intents         GROUP BY a SEM_CLASSIFY: conversations per intent
--   wifi_docs       SEM_SEARCH: the 3 documents nearest to a fixed query, kept
--                   current as documents come and go (embeddings only, no model call)
--   suggested_docs  SEM_SIM_JOIN: the 2 documents nearest to each conversation's
--                   latest message (embeddings only)

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

CREATE VIEW triage AS
SELECT conversation_id, product,
       SEM_CLASSIFY('What does the customer want? {message}',
                    'fix a fault', 'return or refund', 'set up the device', 'other') AS intent
FROM conversation_events;

CREATE VIEW ticket_facts AS
SELECT conversation_id,
       SEM_EXTRACT('Read the support message about {product}: {message}',
                   'device TEXT, urgent BOOLEAN, days_since_problem INT')
FROM conversation_events;

CREATE VIEW intents AS
SELECT SEM_CLASSIFY('What does the customer want? {message}',
                    'fix a fault', 'return or refund', 'set up the device', 'other') AS intent,
       COUNT(*) AS conversations
FROM conversation_events
GROUP BY intent;

CREATE VIEW wifi_docs AS
SELECT doc_id, title, score
FROM SEM_SEARCH(support_docs, 'the router keeps dropping the wifi connection', 3, text => '{title} {body}');

CREATE VIEW suggested_docs AS
SELECT c.conversation_id, d.doc_id, d.title, similarity
FROM conversation_events c SEM_SIM_JOIN support_docs d ON '{c.message} {d.title} {d.body}' LIMIT 2;
