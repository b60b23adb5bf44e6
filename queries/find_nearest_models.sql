-- purpose: the models nearest to one model: every model of its comparability block (same hidden size),
--          most significant relation first, with every signal of pipeline/comparison/signals.py (value and
--          p-value); 'not scored' when flag has not scored the pair
-- params:  $repo_id VARCHAR, $max_rows INTEGER = 20
-- reads:   models, pairs   (views.sql)
WITH me AS (
    SELECT DISTINCT hidden FROM models WHERE repo_id = $repo_id
),
others AS (
    SELECT m.repo_id, m.revision FROM models AS m JOIN me USING (hidden) WHERE m.repo_id <> $repo_id
),
mine AS (
    SELECT CASE WHEN a_repo_id = $repo_id THEN b_repo_id ELSE a_repo_id END AS repo_id,
           CASE WHEN a_repo_id = $repo_id THEN b_revision ELSE a_revision END AS revision,
           *
    EXCLUDE (a_repo_id, a_revision, b_repo_id, b_revision)
    FROM pairs
    WHERE a_repo_id = $repo_id OR b_repo_id = $repo_id
)
SELECT o.repo_id, left(o.revision, 7) AS rev, coalesce(p.verdict, 'not scored') AS verdict, p.declared,
       p.score, p.q,
       p.sketch, p.sketch_p, p.gain, p.gain_p, p.dim_std, p.dim_std_p, p.col_norms, p.col_norms_p,
       p.tokens, p.tokens_p, p.sorted, p.sorted_p, p.std_profile, p.std_profile_p
FROM others AS o
LEFT JOIN mine AS p USING (repo_id, revision)
ORDER BY p.score DESC NULLS LAST, o.repo_id
LIMIT $max_rows::INTEGER;
