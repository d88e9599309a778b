"""`documents.stored_at` follows the document's newest version: a trigger, and the backfill.

Whatever writes a version (the upload services, a restore of a tenant export, SQL by hand), the
statement's new versions move their documents' `stored_at` forward, never back, in the same
transaction, so tiering (documents/tiering.py) never ages a document from an older version. A
first version is stored with its document (the same transaction time): nothing to move.
"""

from __future__ import annotations

CREATE_TRIGGER = """
CREATE FUNCTION document_stored_at_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE documents AS d SET stored_at = n.newest
    FROM (SELECT document_id, max(created_at) AS newest FROM new_rows GROUP BY document_id) AS n
   WHERE d.id = n.document_id AND d.stored_at < n.newest;
  RETURN NULL;
END $$;
CREATE TRIGGER document_stored_at_follow AFTER INSERT ON document_versions
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION document_stored_at_follow();
"""

DROP_TRIGGER = """
DROP TRIGGER IF EXISTS document_stored_at_follow ON document_versions;
DROP FUNCTION IF EXISTS document_stored_at_follow();
"""

# Run by the migration as the tables' owner: the policies are lifted, and the documents' row
# triggers (the audit trail's, the usage count's) are off, for its transaction only: setting a
# new column is a schema change, not a change of any document.
BACKFILL = """
DO $$
DECLARE
  name text;
  enabled text[];
BEGIN
  SELECT coalesce(array_agg(tgname), '{}') INTO enabled FROM pg_trigger
   WHERE tgrelid = 'documents'::regclass AND NOT tgisinternal AND tgenabled <> 'D';
  FOREACH name IN ARRAY enabled LOOP
    EXECUTE format('ALTER TABLE documents DISABLE TRIGGER %I', name);
  END LOOP;
  ALTER TABLE documents NO FORCE ROW LEVEL SECURITY;
  ALTER TABLE document_versions NO FORCE ROW LEVEL SECURITY;
  -- GREATEST skips the NULL of a document without versions.
  UPDATE documents AS d SET stored_at = GREATEST(d.created_at,
    (SELECT max(v.created_at) FROM document_versions AS v WHERE v.document_id = d.id));
  ALTER TABLE documents FORCE ROW LEVEL SECURITY;
  ALTER TABLE document_versions FORCE ROW LEVEL SECURITY;
  FOREACH name IN ARRAY enabled LOOP
    EXECUTE format('ALTER TABLE documents ENABLE TRIGGER %I', name);
  END LOOP;
END $$;
"""
