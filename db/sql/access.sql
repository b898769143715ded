-- Per-survey access policies as seen from an ADQL query (applied by the DDL step).
--
-- A query runs as the query role with the caller's groups in the transaction setting
-- vlkb.groups (a JSON array of strings, set by db/query.py; absent or empty: anonymous).
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
