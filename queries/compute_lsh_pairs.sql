-- purpose: pairs of a large block that share an LSH bucket (same code in any band, for either signature),
--          kept when the Pearson of that signature is at least $min_z chance sds above 0 ('lsh'), with
--          that Fisher z as screen_z. Inside a bucket each model is paired with the next $bucket_window members
--          in the order of their projection (proj), not with every member: a family of 10,000 shares its
--          buckets, and all its pairs would be 50M rows. Step of candidate_pairs()
--          (pipeline/storage/duckdb.py): temp table lsh_pairs.
-- params:  $min_z DOUBLE = 5.0, $max_r DOUBLE = 0.999999, $bucket_window INTEGER = 16
--          ($max_r caps r below 1, whose atanh is infinite: identical signatures still rank first)
-- reads:   lsh_codes   (compute_lsh_codes.sql), lsh_signatures   (compute_lsh_signatures.sql)
WITH ranked AS (
    SELECT repo_id, revision, hidden, kind, band, code,
           row_number() OVER (PARTITION BY hidden, kind, band, code ORDER BY proj, repo_id, revision) AS pos
    FROM lsh_codes
),
-- an equi-join on the position plus an offset, so a bucket of m members costs m * $bucket_window rows, not m^2
collided AS (
    SELECT DISTINCT
           CASE WHEN a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision)
                THEN a.repo_id ELSE b.repo_id END AS a_repo_id,
           CASE WHEN a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision)
                THEN a.revision ELSE b.revision END AS a_revision,
           CASE WHEN a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision)
                THEN b.repo_id ELSE a.repo_id END AS b_repo_id,
           CASE WHEN a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision)
                THEN b.revision ELSE a.revision END AS b_revision,
           a.hidden
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
SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, c.hidden, 'lsh' AS via,
       max(atanh(least($max_r::DOUBLE, list_dot_product(za.z, zb.z) / za.d)) * sqrt(za.d - 3)) AS screen_z
FROM collided AS c
JOIN lsh_signatures AS za ON za.repo_id = c.a_repo_id AND za.revision = c.a_revision
JOIN lsh_signatures AS zb ON zb.repo_id = c.b_repo_id AND zb.revision = c.b_revision AND zb.kind = za.kind
                         AND zb.d = za.d
GROUP BY ALL
HAVING max(atanh(least($max_r::DOUBLE, list_dot_product(za.z, zb.z) / za.d)) * sqrt(za.d - 3))
       >= $min_z::DOUBLE;
