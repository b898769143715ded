-- SQL functions called by ADQL queries translated by vo/adql (applied by the DDL step).
--
-- pgSphere 1.2.0 has no accessor for the vertices of a polygon or path and no constructor
-- from an array, so these read and build them. All are IMMUTABLE, STRICT and PARALLEL SAFE.
--
-- DALI 1.1 section 3.3 serialisation, in degrees:
--   point   -> {lon, lat}
--   circle  -> {lon, lat, radius}
--   polygon -> {lon1, lat1, lon2, lat2, ...}  (also used for pgSphere paths)
--
-- Vertices are read from pgSphere's text output, which is '{(lon , lat),...}' in radians
-- (pgSphere's default output mode, 15 significant digits); the degree mode ('10d , 20d') is
-- read too. Queries never change the mode: set_sphere_output is not an ADQL function.

CREATE OR REPLACE FUNCTION vlkb_dali_point(p spoint) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ARRAY[degrees(long(p)), degrees(lat(p))] $$;

CREATE OR REPLACE FUNCTION vlkb_dali_circle(c scircle) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ARRAY[degrees(long(center(c))), degrees(lat(center(c))), degrees(radius(c))] $$;

CREATE OR REPLACE FUNCTION vlkb_dali_vertices(t text) RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  -- '{(a , b),(c , d)}' -> '{a,b,c,d}', read as a float8[] in one step (the fastest parse
  -- found: about 1 microsecond per vertex; a loop beats ARRAY(SELECT ... unnest(...))).
  v float8[];
BEGIN
  IF strpos(t, 'd') > 0 THEN
    RETURN translate(t, '() d', '')::float8[];
  END IF;
  v := translate(t, '() ', '')::float8[];
  FOR i IN 1 .. coalesce(array_length(v, 1), 0) LOOP
    v[i] := degrees(v[i]);
  END LOOP;
  RETURN v;
END
$$;

CREATE OR REPLACE FUNCTION vlkb_dali_polygon(p spoly) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT vlkb_dali_vertices(p::text) $$;

CREATE OR REPLACE FUNCTION vlkb_dali_path(p spath) RETURNS float8[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT vlkb_dali_vertices(p::text) $$;

-- A polygon from {lon1, lat1, lon2, lat2, ...} in degrees (ADQL POLYGON and BOX over
-- column values; literal ones are written as spoly constants). NULL if any value is NULL.
CREATE OR REPLACE FUNCTION vlkb_spoly(v float8[]) RETURNS spoly
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT CASE WHEN array_position(v, NULL) IS NULL THEN (
    SELECT spoly(spoint(radians(v[i]), radians(v[i + 1])) ORDER BY i)
    FROM generate_series(array_lower(v, 1), array_upper(v, 1) - 1, 2) AS i
  ) END
$$;
