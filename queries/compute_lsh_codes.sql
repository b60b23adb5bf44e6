-- purpose: random-projection LSH codes of the signatures: in each of $bands bands, a model's code is the sign
--          bits of the dot products of its z-scored signature with Rademacher hyperplanes (one bit per
--          plane), and its projection on the band's first plane (proj), which orders a bucket's members so
--          compute_lsh_pairs.sql pairs each with its nearest few in that order. Step of candidate_pairs()
--          (pipeline/storage/duckdb.py): temp table lsh_codes.
-- params:  $bands INTEGER = 24
-- reads:   lsh_signatures   (compute_lsh_signatures.sql)
WITH planes AS (
    -- Hyperplanes are a hash of (band, bit, dimension), the same for every model of that width. One
    -- packed integer is hashed (band above bit 40, bit above bit 20, dimension below): DuckDB's
    -- multi-argument hash(b, k, j) combines so weakly that every band got the same plane. One row per
    -- band holds its planes, so a model's code is one expression.
    SELECT d.d, b.band,
           list_transform(range((SELECT max(bits) FROM lsh_signatures)), lambda k:
               list_transform(range(d.d), lambda j:
                   CASE WHEN hash((b.band::BIGINT << 40) + (k::BIGINT << 20) + j) % 2 = 0
                        THEN 1.0::FLOAT ELSE -1.0::FLOAT END)) AS w
    FROM (SELECT DISTINCT d FROM lsh_signatures) AS d, range($bands::INTEGER) AS b(band)
)
-- (a row per model, band and bit, then grouped, took 30 of 41 s at 100k models)
SELECT z.repo_id, z.revision, z.mid, z.hidden, z.kind, p.band,
       list_sum(list_transform(range(z.bits), lambda k:
           CASE WHEN list_dot_product(z.z, p.w[k + 1]) > 0 THEN 1::BIGINT << k ELSE 0 END)) AS code,
       list_dot_product(z.z, p.w[1]) AS proj
FROM lsh_signatures AS z JOIN planes AS p ON p.d = z.d;
