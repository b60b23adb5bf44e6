-- purpose: candidate pairs without enumerating all pairs at hub scale: models are blocked by hidden size;
--          a block of at most $exhaustive_max models gives all its pairs, a larger one only pairs that share
--          a bucket of random-projection LSH (sign bits of Rademacher projections) over the z-scored
--          embedding LayerNorm gain or word-embedding per-dimension std, in any of $bands bands; a band has
--          $bits bits in a block of 1000 models and one more per doubling, so chance collisions stay ~linear
-- params:  $exhaustive_max INTEGER = 300, $bands INTEGER = 24, $bits INTEGER = 10
-- reads:   models, tensors   (views.sql)
WITH blocks AS (
    SELECT hidden, count(*) AS models FROM models WHERE hidden IS NOT NULL GROUP BY hidden
),
placed AS (
    SELECT m.repo_id, m.revision, m.hidden, b.models <= $exhaustive_max::INTEGER AS small,
           $bits::INTEGER + greatest(0, ceil(log2(b.models / 1000.0)))::INTEGER AS bits
    FROM models AS m JOIN blocks AS b USING (hidden)
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
z AS (
    SELECT repo_id, revision, hidden, bits, kind, len(v) AS d, list_transform(v, lambda x: (x - mu) / sd) AS z
    FROM (SELECT *, list_avg(v) AS mu, list_stddev_pop(v) AS sd FROM signatures)
    WHERE sd > 0
),
planes AS (
    -- Hyperplanes are a hash of (band, bit, dimension), the same for every model of that width. One
    -- packed integer is hashed: DuckDB's multi-argument hash(b, k, j) combines so weakly that every
    -- band got the same plane.
    SELECT d.d, b.band, k.bit,
           list_transform(range(d.d), lambda j:
               CASE WHEN hash((b.band::BIGINT << 40) + (k.bit::BIGINT << 20) + j) % 2 = 0
                    THEN 1.0::DOUBLE ELSE -1.0::DOUBLE END) AS w
    FROM (SELECT DISTINCT d FROM z) AS d, range($bands::INTEGER) AS b(band), range(64) AS k(bit)
    WHERE k.bit < (SELECT max(bits) FROM z)
),
codes AS (
    SELECT z.repo_id, z.revision, z.hidden, z.kind, p.band,
           sum(CASE WHEN list_dot_product(z.z, p.w) > 0 THEN 1::BIGINT << p.bit ELSE 0 END) AS code
    FROM z JOIN planes AS p ON p.d = z.d AND p.bit < z.bits
    GROUP BY ALL
),
bucketed AS (
    SELECT DISTINCT a.repo_id AS a_repo_id, a.revision AS a_revision, b.repo_id AS b_repo_id,
           b.revision AS b_revision, a.hidden, 'lsh' AS via
    FROM codes AS a
    JOIN codes AS b
      ON b.hidden = a.hidden AND b.kind = a.kind AND b.band = a.band AND b.code = a.code
     AND (a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision))
)
SELECT * FROM exhaustive
UNION ALL
SELECT * FROM bucketed
ORDER BY hidden, a_repo_id, a_revision, b_repo_id, b_revision;
