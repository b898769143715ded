-- Every change to what a dataset lookup answers is announced on the channel vlkb_access
-- (NOTIFY at commit, payload: the table), whichever process or tool made it: ingest and
-- withdrawal (vlkb.datasets, ivoa.obscore) and policies (vlkb.survey_policies). Each service
-- process listens and forgets its recent lookups (vo/lookups.py). Applied by the DDL step after
-- the published tables exist; statement-level, so a bulk load announces once per statement.

CREATE OR REPLACE FUNCTION vlkb_access_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('vlkb_access', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
  RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER vlkb_access_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vlkb.datasets
  FOR EACH STATEMENT EXECUTE FUNCTION vlkb_access_changed();

CREATE OR REPLACE TRIGGER vlkb_access_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vlkb.survey_policies
  FOR EACH STATEMENT EXECUTE FUNCTION vlkb_access_changed();

CREATE OR REPLACE TRIGGER vlkb_access_changed
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ivoa.obscore
  FOR EACH STATEMENT EXECUTE FUNCTION vlkb_access_changed();
