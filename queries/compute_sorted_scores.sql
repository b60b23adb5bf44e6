-- purpose: permutation-invariant signal of every candidate pair: each whole 1-D tensor (norm gains and
--          biases, projection biases) and the word-embedding per-dimension std, sorted, compared with the
--          same-named vector of the other model by Pearson; a permutation of hidden units, neurons or
--          heads (and any rescaling) leaves a sorted vector's shape unchanged. Median over vectors.
-- params:  $min_values INTEGER = 8
-- reads:   candidate_ids, candidate_models (number_candidates.sql), tensors   (views.sql)
WITH raw AS (
    SELECT k.mid, t.role, coalesce(t.layer, -1) AS layer, t.kind, t."values" AS v
    FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
    WHERE len(t."values") >= $min_values::INTEGER
    UNION ALL
    SELECT k.mid, t.role, -1, 'dim_std', t.dim_std
    FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
    WHERE t.kind = 'weight' AND t.role = 'embed' AND len(t.dim_std) >= $min_values::INTEGER
),
vecs AS MATERIALIZED (
    -- sorted, then centred (Pearson is the cosine of centred lists); a constant vector gives NaN below
    SELECT mid, role, layer, kind, len(s) AS n, list_transform(s, lambda x: x - mu)::DOUBLE[] AS c
    FROM (SELECT *, list_sort(v) AS s, list_avg(v) AS mu FROM raw)
),
r AS (
    SELECT p.pid, a.n, nullif(list_cosine_similarity(a.c, b.c), 'NaN'::DOUBLE) AS r
    FROM candidate_ids AS p
    JOIN vecs AS a ON a.mid = p.a_mid
    JOIN vecs AS b ON b.mid = p.b_mid
        AND b.role = a.role AND b.layer = a.layer AND b.kind = a.kind AND b.n = a.n
)
SELECT q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision,
       median(r.r) AS sorted, count(r.r) AS sorted_vectors, median(r.n) AS sorted_width
FROM r
JOIN candidate_ids AS q USING (pid)
WHERE r.r IS NOT NULL
GROUP BY ALL
ORDER BY q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision;
