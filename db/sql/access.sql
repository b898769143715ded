-- Per-survey access policies as seen from an ADQL query (applied by the DDL step).
--
-- A query runs as the query role with the caller's groups in the transaction setting
-- vlkb.groups (a JSON array of strings, set by db/session.py; absent or empty: anonymous)
-- and the caller's user name in vlkb.user (empty: anonymous).
-- Row-level security policies on every table that declares an access_column (schemas/)
-- hide the rows of surveys whose policy names none of those groups. vlkb.survey_policies
-- itself is not readable by the query role: the function below reads it as its owner.

CREATE OR REPLACE FUNCTION vlkb_caller_groups() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(ARRAY(SELECT json_array_elements_text(
           coalesce(nullif(current_setting('vlkb.groups', true), ''), '[]')::json)), '{}')
$$;

-- The surveys the caller may not read. Row-level security calls it as
-- (SELECT vlkb_hidden_surveys()), an InitPlan evaluated once per query and table.
CREATE OR REPLACE FUNCTION vlkb_hidden_surveys() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, public
AS $$
  SELECT coalesce(array_agg(p.survey ORDER BY p.survey), '{}')
  FROM vlkb.survey_policies p
  WHERE cardinality(p.groups) > 0 AND NOT (p.groups && vlkb_caller_groups())
$$;

REVOKE ALL ON FUNCTION vlkb_hidden_surveys() FROM PUBLIC;

-- Persistent user tables (issue 17): the one rule of who reads them. A user table is readable
-- by its owner (vlkb.user, set with vlkb.groups by db/session.py) and by the members of the
-- groups it is shared with. The rule is written once, here; row-level security applies it to
-- the registry vlkb.user_tables (so a caller's session lists only the tables it may read), to
-- every user table's rows and to the user-table rows of TAP_SCHEMA (db/usertables.py installs
-- those policies).

CREATE OR REPLACE FUNCTION vlkb_caller_user() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT nullif(current_setting('vlkb.user', true), '')
$$;

CREATE OR REPLACE FUNCTION vlkb_may_read_user_table(owner text, read_groups text[]) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT coalesce(owner = vlkb_caller_user(), false) OR coalesce(read_groups && vlkb_caller_groups(), false)
$$;

-- A user table's rows: visible when the registry row says the caller may read the table.
-- Called as (SELECT vlkb_user_table_readable(...)): an InitPlan, once per query and table.
CREATE OR REPLACE FUNCTION vlkb_user_table_readable(schema_name text, table_name text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, public
AS $$
  SELECT EXISTS (SELECT 1 FROM vlkb.user_tables u
                 WHERE u.schema_name = $1 AND u.table_name = $2 AND vlkb_may_read_user_table(u.owner, u.read_groups))
$$;

-- TAP_SCHEMA: the user tables (schema.table) the caller may not read ...
CREATE OR REPLACE FUNCTION vlkb_hidden_user_tables() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, public
AS $$
  SELECT coalesce(array_agg(u.schema_name || '.' || u.table_name), '{}')
  FROM vlkb.user_tables u WHERE NOT vlkb_may_read_user_table(u.owner, u.read_groups)
$$;

-- ... and the user schemas holding no table the caller may read.
CREATE OR REPLACE FUNCTION vlkb_hidden_user_schemas() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, public
AS $$
  SELECT coalesce(array_agg(s.schema_name), '{}')
  FROM vlkb.user_schemas s
  WHERE NOT EXISTS (SELECT 1 FROM vlkb.user_tables u
                    WHERE u.schema_name = s.schema_name AND vlkb_may_read_user_table(u.owner, u.read_groups))
$$;

REVOKE ALL ON FUNCTION vlkb_user_table_readable(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION vlkb_hidden_user_tables() FROM PUBLIC;
REVOKE ALL ON FUNCTION vlkb_hidden_user_schemas() FROM PUBLIC;
