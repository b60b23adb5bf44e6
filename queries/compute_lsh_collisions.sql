-- purpose: pairs of a large block that share an LSH bucket (same code in any band, for either signature),
--          by model number (a_mid < b_mid, the key order of compute_candidate_blocks.sql). Inside a bucket
--          each model is paired with the next $bucket_window members in the order of their projection
--          (proj), not with every member: a family of 10,000 shares its buckets, and all its pairs would be
--          50M rows. Step of candidate_pairs() (pipeline/storage/duckdb.py): temp table lsh_collisions.
-- params:  $bucket_window INTEGER = 16
-- reads:   lsh_codes   (compute_lsh_codes.sql)
WITH ranked AS (
    -- models by number: at 100k Hub-shaped models the LSH steps keep 20M pairs, and with names instead of
    -- numbers they, lineage_pairs and the spanning forest took 51.9 s against 37.5 s
    SELECT mid, hidden, kind, band, code,
           row_number() OVER (PARTITION BY hidden, kind, band, code ORDER BY proj, mid) AS pos
    FROM lsh_codes
)
-- an equi-join on the position plus an offset, so a bucket of m members costs m * $bucket_window rows, not m^2
SELECT DISTINCT least(a.mid, b.mid) AS a_mid, greatest(a.mid, b.mid) AS b_mid, a.hidden
FROM ranked AS a
JOIN range(1, $bucket_window::INTEGER + 1) AS o(k) ON true
JOIN ranked AS b
  ON b.hidden = a.hidden AND b.kind = a.kind AND b.band = a.band AND b.code = a.code AND b.pos = a.pos + o.k;
