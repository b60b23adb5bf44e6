-- purpose: candidate pairs without enumerating all pairs at hub scale. Models are blocked by hidden size;
--          a block of at most $exhaustive_max models gives all its pairs ('exhaustive'). A larger block gives
--          (1) pairs that share a bucket of random-projection LSH (sign bits of Rademacher projections) over
--          the z-scored embedding LayerNorm gain or word-embedding per-dimension std in any of $bands bands
--          ($bits bits at 1000 models, one more per doubling, so chance collisions stay ~linear), kept when
--          the Pearson of those vectors is $min_z chance sds above 0 ('lsh'); and (2) $background_pairs
--          pairs drawn at random ('background'), the unbiased sample each signal's background is fitted on.
--          block_pairs is every pair of the block: flags control the false discovery rate over all of them.
-- params:  $exhaustive_max INTEGER = 300, $bands INTEGER = 24, $bits INTEGER = 10, $min_z DOUBLE = 5.0, $background_pairs INTEGER = 2000
--          Models none of whose tensors has a known role are blocked by layout instead
--          (compute_layout_candidate_pairs.sql), even when their config names a hidden size.
-- reads:   models, tensors   (views.sql)
WITH known AS (
    SELECT * FROM models SEMI JOIN (SELECT DISTINCT repo_id, revision FROM tensors WHERE role <> 'other')
        USING (repo_id, revision)
    WHERE hidden IS NOT NULL
),
blocks AS (
    SELECT hidden, count(*) AS models FROM known GROUP BY hidden
),
placed AS (
    SELECT m.repo_id, m.revision, m.hidden, b.models <= $exhaustive_max::INTEGER AS small,
           $bits::INTEGER + greatest(0, ceil(log2(b.models / 1000.0)))::INTEGER AS bits,
           -- a position in the block in hash order, for the random background draws
           row_number() OVER (PARTITION BY m.hidden ORDER BY hash(m.repo_id || '@' || m.revision), m.repo_id,
                              m.revision) - 1 AS idx
    FROM known AS m JOIN blocks AS b USING (hidden)
),
exhaustive AS (
    SELECT a.repo_id AS a_repo_id, a.revision AS a_revision, b.repo_id AS b_repo_id, b.revision AS b_revision,
           a.hidden, 'exhaustive' AS via
    FROM placed AS a
    JOIN placed AS b
      ON b.hidden = a.hidden AND (a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision))
    WHERE a.small
),
signatures AS (
    -- per-dimension vectors that casts, quantisation and fine-tuning keep, and that cousins share
    SELECT t.repo_id, t.revision, p.hidden, p.bits, 'gain' AS kind, t."values" AS v
    FROM tensors AS t JOIN placed AS p USING (repo_id, revision)
    WHERE NOT p.small AND t.kind = 'weight' AND t.role = 'embed_norm'
    UNION ALL
    SELECT t.repo_id, t.revision, p.hidden, p.bits, 'dim_std', t.dim_std
    FROM tensors AS t JOIN placed AS p USING (repo_id, revision)
    WHERE NOT p.small AND t.kind = 'weight' AND t.role = 'embed'
),
z AS MATERIALIZED (
    -- z-scored with the population sd, so a Pearson is the mean of the products
    SELECT repo_id, revision, hidden, bits, kind, len(v) AS d,
           list_transform(v, lambda x: (x - mu) / sd)::FLOAT[] AS z
    FROM (SELECT *, list_avg(v) AS mu, list_stddev_pop(v) AS sd FROM signatures)
    WHERE sd > 0 AND len(v) > 3
),
planes AS (
    -- Hyperplanes are a hash of (band, bit, dimension), the same for every model of that width. One
    -- packed integer is hashed: DuckDB's multi-argument hash(b, k, j) combines so weakly that every
    -- band got the same plane. One row per band holds its planes, so a model's code is one expression.
    SELECT d.d, b.band,
           list_transform(range((SELECT max(bits) FROM z)), lambda k:
               list_transform(range(d.d), lambda j:
                   CASE WHEN hash((b.band::BIGINT << 40) + (k::BIGINT << 20) + j) % 2 = 0
                        THEN 1.0::FLOAT ELSE -1.0::FLOAT END)) AS w
    FROM (SELECT DISTINCT d FROM z) AS d, range($bands::INTEGER) AS b(band)
),
codes AS MATERIALIZED (
    -- (a row per model, band and bit, then grouped, took 30 of 41 s at 100k models)
    SELECT z.repo_id, z.revision, z.hidden, z.kind, p.band,
           list_sum(list_transform(range(z.bits), lambda k:
               CASE WHEN list_dot_product(z.z, p.w[k + 1]) > 0 THEN 1::BIGINT << k ELSE 0 END)) AS code
    FROM z JOIN planes AS p ON p.d = z.d
),
collided AS (
    SELECT DISTINCT a.repo_id AS a_repo_id, a.revision AS a_revision, b.repo_id AS b_repo_id,
           b.revision AS b_revision, a.hidden
    FROM codes AS a
    JOIN codes AS b
      ON b.hidden = a.hidden AND b.kind = a.kind AND b.band = a.band AND b.code = a.code
     AND (a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision))
),
bucketed AS (
    -- Most collisions are chance (a 10-bit bucket holds ~1/1000 of the block): the exact Pearson of the
    -- signature vectors, one dot product, drops them before the expensive compute_*_scores.sql. At 5
    -- chance sds: real unrelated same-shape models sit near 1 (MiniLM vs e5-small dim_std 0.058 over
    -- 384 dims), real cousins near 30 (gain 0.914); 3 kept 4k chance collisions of 10k synthetic models.
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, c.hidden, 'lsh' AS via
    FROM collided AS c
    JOIN z AS za ON za.repo_id = c.a_repo_id AND za.revision = c.a_revision
    JOIN z AS zb ON zb.repo_id = c.b_repo_id AND zb.revision = c.b_revision AND zb.kind = za.kind
                AND zb.d = za.d
    GROUP BY ALL
    HAVING max(atanh(least(0.999999, list_dot_product(za.z, zb.z) / za.d)) * sqrt(za.d - 3))
           >= $min_z::DOUBLE
),
draws AS (
    -- two hashes per draw: a model, and a non-zero step to its partner (never itself)
    SELECT b.hidden, b.models,
           hash((b.hidden::BIGINT << 32) + 2 * s.i) % b.models AS i,
           1 + hash((b.hidden::BIGINT << 32) + 2 * s.i + 1) % (b.models - 1) AS step
    FROM blocks AS b, range($background_pairs::INTEGER) AS s(i)
    WHERE b.models > $exhaustive_max::INTEGER AND b.models > 1
),
sampled AS (
    SELECT DISTINCT
           CASE WHEN x.repo_id < y.repo_id OR (x.repo_id = y.repo_id AND x.revision < y.revision)
                THEN x.repo_id ELSE y.repo_id END AS a_repo_id,
           CASE WHEN x.repo_id < y.repo_id OR (x.repo_id = y.repo_id AND x.revision < y.revision)
                THEN x.revision ELSE y.revision END AS a_revision,
           CASE WHEN x.repo_id < y.repo_id OR (x.repo_id = y.repo_id AND x.revision < y.revision)
                THEN y.repo_id ELSE x.repo_id END AS b_repo_id,
           CASE WHEN x.repo_id < y.repo_id OR (x.repo_id = y.repo_id AND x.revision < y.revision)
                THEN y.revision ELSE x.revision END AS b_revision,
           d.hidden, 'background' AS via
    FROM draws AS d
    JOIN placed AS x ON x.hidden = d.hidden AND x.idx = d.i
    JOIN placed AS y ON y.hidden = d.hidden AND y.idx = (d.i + d.step) % d.models
),
merged AS (
    -- a random draw keeps its 'background' label when LSH finds it too: the sample stays unbiased
    SELECT a_repo_id, a_revision, b_repo_id, b_revision, hidden, min(via) AS via
    FROM (SELECT * FROM bucketed UNION ALL SELECT * FROM sampled)
    GROUP BY ALL
)
SELECT c.*, b.models * (b.models - 1) // 2 AS block_pairs
FROM (SELECT * FROM exhaustive UNION ALL SELECT * FROM merged) AS c
JOIN blocks AS b USING (hidden)
ORDER BY c.hidden, c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision;
