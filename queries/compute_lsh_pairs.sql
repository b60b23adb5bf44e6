-- purpose: the LSH collisions of a large block (compute_lsh_collisions.sql), kept when the Pearson of a
--          signature is at least $min_z chance sds above 0 ('lsh'), with that Fisher z as screen_z. A step
--          of its own rather than a CTE over the collisions: as one statement, at 300k Hub-shaped models
--          (65M collisions) DuckDB's temporary files filled the disk's 35 GB; as two they peak at 1.5 and
--          3.6 GB. Step of candidate_pairs() (pipeline/storage/duckdb.py): temp table lsh_pairs.
-- params:  $min_z DOUBLE = 5.0, $max_r DOUBLE = 0.999999
--          ($max_r caps r below 1, whose atanh is infinite: identical signatures still rank first)
-- reads:   lsh_collisions   (compute_lsh_collisions.sql), lsh_signatures   (compute_lsh_signatures.sql)
-- Most collisions are chance (a 10-bit bucket holds ~1/1000 of the block): the exact Pearson of the
-- signature vectors, one dot product, drops them before the expensive compute_*_scores.sql. At 5
-- chance sds: real unrelated same-shape models sit near 1 (MiniLM vs e5-small dim_std 0.058 over
-- 384 dims), real cousins near 30 (gain 0.914); 3 kept 4k chance collisions of 10k synthetic models.
-- Fisher's z: atanh(r) has sd 1 / sqrt(d - 3) under no relation.
SELECT c.a_mid, c.b_mid, c.hidden, 'lsh' AS via,
       max(atanh(least($max_r::DOUBLE, list_dot_product(za.z, zb.z) / za.d)) * sqrt(za.d - 3)) AS screen_z
FROM lsh_collisions AS c
JOIN lsh_signatures AS za ON za.mid = c.a_mid
JOIN lsh_signatures AS zb ON zb.mid = c.b_mid AND zb.kind = za.kind AND zb.d = za.d
GROUP BY ALL
HAVING max(atanh(least($max_r::DOUBLE, list_dot_product(za.z, zb.z) / za.d)) * sqrt(za.d - 3))
       >= $min_z::DOUBLE;
