-- purpose: every declared base_model checked against the evidence: 'confirmed' (the pair is flagged),
--          'contradicted' (scored and not flagged: the declared base disagrees with the weights),
--          'not scored' (no flag run covers the pair), 'base not fingerprinted'; filter with $status
-- params:  $status VARCHAR = '%'
-- reads:   models, pairs   (views.sql)
WITH declared AS (
    SELECT repo_id, revision, unnest(base_models) AS base FROM models WHERE len(base_models) > 0
),
base_models AS (
    SELECT repo_id AS base, revision AS base_revision FROM models
),
checked AS (
    SELECT d.repo_id, d.revision, d.base, b.base_revision, p.verdict, p.score, p.q, p.flagged,
           CASE WHEN b.base IS NULL THEN 'base not fingerprinted'
                WHEN p.flagged IS NULL THEN 'not scored'
                WHEN p.flagged THEN 'confirmed'
                ELSE 'contradicted' END AS status
    FROM declared AS d
    LEFT JOIN base_models AS b USING (base)
    LEFT JOIN pairs AS p
      ON (p.a_repo_id = d.repo_id AND p.a_revision = d.revision
          AND p.b_repo_id = b.base AND p.b_revision = b.base_revision)
      OR (p.b_repo_id = d.repo_id AND p.b_revision = d.revision
          AND p.a_repo_id = b.base AND p.a_revision = b.base_revision)
)
SELECT repo_id, left(revision, 7) AS rev, base, left(base_revision, 7) AS base_rev, status, verdict, score, q
FROM checked
WHERE status LIKE $status
ORDER BY status = 'contradicted' DESC, status, repo_id, base;
