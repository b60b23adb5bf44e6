-- purpose: pairs of a large block that share an LSH bucket (same code in any band, for either signature),
--          by model number (a_mid < b_mid, the key order of compute_candidate_blocks.sql), kept when the
--          Pearson of that signature is at least $min_z chance sds above 0 ('lsh'), with that Fisher z as
--          screen_z. Inside a bucket each model is paired with the next $bucket_window members
--          in the order of their projection (proj), not with every member: a family of 10,000 shares its
--          buckets, and all its pairs would be 50M rows. Step of candidate_pairs()
--          (pipeline/storage/duckdb.py): temp table lsh_pairs.
-- params:  $min_z DOUBLE = 5.0, $max_r DOUBLE = 0.999999, $bucket_window INTEGER = 16
--          ($max_r caps r below 1, whose atanh is infinite: identical signatures still rank first)
-- reads:   lsh_codes   (compute_lsh_codes.sql), lsh_signatures   (compute_lsh_signatures.sql)
WITH ranked AS (
    -- models by number: at 100k Hub-shaped models this step keeps 20M pairs, and with names instead it,
    -- lineage_pairs and the spanning forest took 51.9 s against 37.5 s
    SELECT mid, hidden, kind, band, code,
           row_number() OVER (PARTITION BY hidden, kind, band, code ORDER BY proj, mid) AS pos
    FROM lsh_codes
),
-- an equi-join on the position plus an offset, so a bucket of m members costs m * $bucket_window rows, not m^2
collided AS (
    SELECT DISTINCT least(a.mid, b.mid) AS a_mid, greatest(a.mid, b.mid) AS b_mid, a.hidden
    FROM ranked AS a
    JOIN range(1, $bucket_window::INTEGER + 1) AS o(k) ON true
    JOIN ranked AS b
      ON b.hidden = a.hidden AND b.kind = a.kind AND b.band = a.band AND b.code = a.code AND b.pos = a.pos + o.k
)
-- Most collisions are chance (a 10-bit bucket holds ~1/1000 of the block): the exact Pearson of the
-- signature vectors, one dot product, drops them before the expensive compute_*_scores.sql. At 5
-- chance sds: real unrelated same-shape models sit near 1 (MiniLM vs e5-small dim_std 0.058 over
-- 384 dims), real cousins near 30 (gain 0.914); 3 kept 4k chance collisions of 10k synthetic models.
-- Fisher's z: atanh(r) has sd 1 / sqrt(d - 3) under no relation.
SELECT c.a_mid, c.b_mid, c.hidden, 'lsh' AS via,
       max(atanh(least($max_r::DOUBLE, list_dot_product(za.z, zb.z) / za.d)) * sqrt(za.d - 3)) AS screen_z
FROM collided AS c
JOIN lsh_signatures AS za ON za.mid = c.a_mid
JOIN lsh_signatures AS zb ON zb.mid = c.b_mid AND zb.kind = za.kind AND zb.d = za.d
GROUP BY ALL
HAVING max(atanh(least($max_r::DOUBLE, list_dot_product(za.z, zb.z) / za.d)) * sqrt(za.d - 3))
       >= $min_z::DOUBLE;
