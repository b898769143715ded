-- SQL functions called by ADQL queries translated by vo/adql (applied by the DDL step).
--
-- pgSphere 1.2.0 has no accessor for the vertices of a polygon or path and no constructor
-- from an array, so these read and build them. All are IMMUTABLE, STRICT and PARALLEL SAFE
-- but vlkb_public_url (at the end), which reads a setting.
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

-- Stored DALI forms of published polygon and path columns (internal generated columns declared
-- next to them in schemas/, issue 16): formatting pgSphere's text output and reading it back
-- (vlkb_dali_polygon) per row costs most of the database's time when such a column streams, so
-- each published polygon or path has two internal twins computed once, at write time, from the
-- very same DALI array: its VOTable binary form (big-endian int32 count, then big-endian
-- doubles, exactly what a BINARY/BINARY2 variable-length double array holds) and its text form
-- (the space-separated list the text formats write). A query's output names them as one value of
-- type vlkb_dali_twin (vo/adql/output.py); the result writer picks the field its format needs
-- (vo/votable/columns.py), and the planner reduces (ROW(b, t)::vlkb_dali_twin).b to b.
-- IMMUTABLE as generated columns require: float8out is shortest-exact at every
-- extra_float_digits > 0 (PostgreSQL 12+; the default is 1), and the service never lowers it.
CREATE OR REPLACE FUNCTION vlkb_dali_bytes(v float8[]) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT int4send(coalesce(array_length(v, 1), 0))
         || coalesce((SELECT string_agg(float8send(coalesce(x, 'NaN')), ''::bytea ORDER BY i)
                      FROM unnest(v) WITH ORDINALITY AS u(x, i)), ''::bytea)
$$;

CREATE OR REPLACE FUNCTION vlkb_dali_text(v float8[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT array_to_string(v, ' ', 'NaN') $$;

DO $$
BEGIN
  IF to_regtype('public.vlkb_dali_twin') IS NULL THEN
    CREATE TYPE public.vlkb_dali_twin AS (b bytea, t text);
  END IF;
END
$$;

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

-- ADQL DISTANCE(point, region): the angular distance (radians) from a point to the nearest
-- point of a polygon or path, 0 when a polygon contains the point. pgSphere 1.2 has a
-- distance operator (<->) between points and between points and circles only, so the edges
-- are measured here: an edge is the shorter great-circle arc between consecutive vertices (as
-- pgSphere draws it); the distance to it is the distance to its great circle when the
-- point's projection falls on the arc, else the distance to the nearer end. Unit vectors,
-- atan2 for angles, so the result keeps its precision at small and large distances alike.
CREATE OR REPLACE FUNCTION vlkb_arcs_distance(p spoint, v float8[], closed boolean) RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
  n int := coalesce(array_length(v, 1), 0) / 2;
  last int;
  px float8 := cos(lat(p)) * cos(long(p));
  py float8 := cos(lat(p)) * sin(long(p));
  pz float8 := sin(lat(p));
  sx float8; sy float8; sz float8;
  ex float8; ey float8; ez float8;
  nx float8; ny float8; nz float8; nn float8;
  lon float8; la float8;
  d float8;
  best float8 := NULL;
  j int;
BEGIN
  IF n = 0 THEN
    RETURN NULL;
  END IF;
  last := CASE WHEN closed THEN n - 1 ELSE n - 2 END;
  FOR i IN 0 .. greatest(last, 0) LOOP
    j := CASE WHEN n = 1 THEN 0 ELSE (i + 1) % n END;
    lon := radians(v[2 * i + 1]); la := radians(v[2 * i + 2]);
    sx := cos(la) * cos(lon); sy := cos(la) * sin(lon); sz := sin(la);
    lon := radians(v[2 * j + 1]); la := radians(v[2 * j + 2]);
    ex := cos(la) * cos(lon); ey := cos(la) * sin(lon); ez := sin(la);
    -- n = s x e, the pole of the edge's great circle
    nx := sy * ez - sz * ey; ny := sz * ex - sx * ez; nz := sx * ey - sy * ex;
    nn := sqrt(nx * nx + ny * ny + nz * nz);
    IF nn > 0
       -- (s x p) . n >= 0 and (p x e) . n >= 0: p projects between s and e
       AND (sy * pz - sz * py) * nx + (sz * px - sx * pz) * ny + (sx * py - sy * px) * nz >= 0
       AND (py * ez - pz * ey) * nx + (pz * ex - px * ez) * ny + (px * ey - py * ex) * nz >= 0 THEN
      d := asin(least(1.0, abs(px * nx + py * ny + pz * nz) / nn));
    ELSE
      d := least(
        atan2(sqrt((py * sz - pz * sy) ^ 2 + (pz * sx - px * sz) ^ 2 + (px * sy - py * sx) ^ 2),
              px * sx + py * sy + pz * sz),
        atan2(sqrt((py * ez - pz * ey) ^ 2 + (pz * ex - px * ez) ^ 2 + (px * ey - py * ex) ^ 2),
              px * ex + py * ey + pz * ez));
    END IF;
    best := least(best, d);
  END LOOP;
  RETURN best;
END
$$;

CREATE OR REPLACE FUNCTION vlkb_distance(p spoint, g spoly) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN p <@ g THEN 0.0 ELSE vlkb_arcs_distance(p, vlkb_dali_polygon(g), true) END $$;

CREATE OR REPLACE FUNCTION vlkb_distance(p spoint, g spath) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT vlkb_arcs_distance(p, vlkb_dali_path(g), false) $$;

-- An absolute URL from a reference stored relative to the service's public base URL
-- (ivoa.obscore access_url and preview: 'datalink/links?ID=...'), so the answers follow
-- VLKB_BASE_URL without re-ingest. The base is the caller's session setting vlkb.base_url
-- (db/session.py); a value that is already absolute (has '://': relative references are
-- percent-encoded, so never do) is left alone, and so is every value when no base is set.
-- STABLE, not IMMUTABLE: the answer depends on a setting. Not STRICT, so the planner inlines
-- it (measured 0.6 instead of 4.3 microseconds per value; NULL still gives NULL).
CREATE OR REPLACE FUNCTION vlkb_public_url(ref text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN strpos(ref, '://') > 0 OR coalesce(current_setting('vlkb.base_url', true), '') = '' THEN ref
    ELSE rtrim(current_setting('vlkb.base_url', true), '/') || '/' || ltrim(ref, '/')
  END
$$;

-- The circle of a cross-match, DISTANCE(p, q) < r with q a column (vo/adql/geometry.py): the
-- same circle as scircle(q, r), but it never raises (NULL for a radius pgSphere refuses), so
-- the DDL step can mark it LEAKPROOF. A join condition `p <@ scircle(q, r)` on a table with
-- row-level security can use p's GiST index only when every function in it is leakproof, and
-- pgSphere's scircle() raises on a bad radius. plpgsql, so the planner does not inline it back
-- into scircle(); the translator calls it only with a constant radius within (0, 90] degrees.
CREATE OR REPLACE FUNCTION vlkb_join_circle(q spoint, r float8) RETURNS scircle
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
  IF r >= 0 AND r <= pi() / 2 THEN
    RETURN scircle(q, r);
  END IF;
  RETURN NULL;
END
$$;
