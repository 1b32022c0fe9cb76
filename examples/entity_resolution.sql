-- entity_resolution.sql — duplicates and topics in a stream of CRM contact records
-- (examples/contacts.jsonl: the same people written several ways, then an update, a delete
-- and a late insert).
--
--   contacts_resolved  SEM_DEDUP: each record with its entity, the smallest contact_id of its
--                      cluster of duplicates. Records are compared only when their embeddings
--                      are close (cosine >= threshold); each such pair is asked once ("the same
--                      person?"); clusters follow the "yes" pairs (union-find) and split again
--                      from the stored answers when a record is deleted (no model call)
--   people             GROUP BY the entity: records per resolved person
--   topics             GROUP BY SEM_CLUSTER: records per topic of their note, around 3
--                      prototype notes chosen by hash (no model call; a record's topic changes
--                      only when a prototype comes or goes)
--   named_topics       GROUP BY SEM_GROUP: the same, each group named once by the model

CREATE STREAM contacts (
    contact_id INT KEY,
    name       TEXT,
    company    TEXT,
    city       TEXT,
    note       TEXT
) WITH (topic = 'contacts', format = 'json');

CREATE VIEW contacts_resolved AS
SELECT contact_id, name, company,
       SEM_DEDUP('The same person? {name} of {company} in {city}', threshold = 0.8) AS entity
FROM contacts;

CREATE VIEW people AS
SELECT SEM_DEDUP('The same person? {name} of {company} in {city}', threshold = 0.8) AS entity,
       COUNT(*) AS records
FROM contacts
GROUP BY entity;

CREATE VIEW topics AS
SELECT SEM_CLUSTER('{note}', 3) AS topic, COUNT(*) AS records
FROM contacts
GROUP BY topic;

CREATE VIEW named_topics AS
SELECT SEM_GROUP('What is the customer writing about? {note}', 3, max_tokens = 6) AS topic, COUNT(*) AS records
FROM contacts
GROUP BY topic;
