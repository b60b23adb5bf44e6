-- purpose: candidate pairs of models of unknown architecture (no tensor has a role from the roles table, so
--          there is no hidden size to block on). Such models are blocked by tensor layout: the multiset of
--          the shapes of their matrices (2-D and larger), which a cast, a re-upload in another file format
--          and a renamed copy keep. A block of at most $exhaustive_max models gives all its pairs
--          ('exhaustive'); a larger one $background_pairs random pairs ('background'). block_pairs is every
--          pair of the block: flags control the false discovery rate over all of them.
-- params:  $exhaustive_max INTEGER = 300, $background_pairs INTEGER = 2000
-- reads:   layouts   (views.sql)
WITH blocks AS (
    SELECT layout, count(*) AS models FROM layouts GROUP BY layout
),
placed AS (
    SELECT l.repo_id, l.revision, l.layout, b.models,
           row_number() OVER (PARTITION BY l.layout ORDER BY hash(l.repo_id || '@' || l.revision), l.repo_id,
                              l.revision) - 1 AS idx
    FROM layouts AS l JOIN blocks AS b USING (layout)
),
exhaustive AS (
    SELECT a.repo_id AS a_repo_id, a.revision AS a_revision, b.repo_id AS b_repo_id, b.revision AS b_revision,
           a.layout, 'exhaustive' AS via
    FROM placed AS a
    JOIN placed AS b
      ON b.layout = a.layout AND (a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision))
    WHERE a.models <= $exhaustive_max::INTEGER
),
draws AS (
    -- two hashes per draw: a model, and a non-zero step to its partner (never itself)
    SELECT b.layout, b.models,
           hash(b.layout || ':' || (2 * s.i)) % b.models AS i,
           1 + hash(b.layout || ':' || (2 * s.i + 1)) % (b.models - 1) AS step
    FROM blocks AS b, range($background_pairs::INTEGER) AS s(i)
    WHERE b.models > $exhaustive_max::INTEGER
),
sampled AS (
    SELECT DISTINCT least(x.repo_id || '@' || x.revision, y.repo_id || '@' || y.revision) AS lo,
           greatest(x.repo_id || '@' || x.revision, y.repo_id || '@' || y.revision) AS hi, d.layout
    FROM draws AS d
    JOIN placed AS x ON x.layout = d.layout AND x.idx = d.i
    JOIN placed AS y ON y.layout = d.layout AND y.idx = (d.i + d.step) % d.models
)
SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, NULL::BIGINT AS hidden, c.layout, c.via,
       b.models * (b.models - 1) // 2 AS block_pairs
FROM (
    SELECT * FROM exhaustive
    UNION ALL
    SELECT a.repo_id, a.revision, b.repo_id, b.revision, s.layout, 'background'
    FROM sampled AS s
    JOIN placed AS a ON a.repo_id || '@' || a.revision = s.lo AND a.layout = s.layout
    JOIN placed AS b ON b.repo_id || '@' || b.revision = s.hi AND b.layout = s.layout
) AS c
JOIN blocks AS b USING (layout)
ORDER BY c.layout, c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision;
