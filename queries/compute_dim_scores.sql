-- purpose: per-hidden-dimension signals of every candidate pair, as Pearson (raw cosine of two positive
--          vectors is ~0.99 by construction): embedding LayerNorm gain, word-embedding per-dimension std,
--          and input-column norms of q/k/v/up/gate (best layer pair per role, median over roles)
-- params:  (none)
-- reads:   candidates, tensors   (views.sql)
WITH keys AS (
    SELECT a_repo_id AS repo_id, a_revision AS revision FROM candidates
    UNION
    SELECT b_repo_id, b_revision FROM candidates
),
raw AS (
    SELECT repo_id, revision, 'gain' AS signal, role, -1 AS layer, false AS transposed, "values" AS v
    FROM tensors SEMI JOIN keys USING (repo_id, revision)
    WHERE kind = 'weight' AND role = 'embed_norm'
    UNION ALL
    SELECT repo_id, revision, 'dim_std', role, -1, false, dim_std
    FROM tensors SEMI JOIN keys USING (repo_id, revision)
    WHERE kind = 'weight' AND role = 'embed'
    UNION ALL
    SELECT repo_id, revision, 'col_norms', role, layer, transposed, col_norms
    FROM tensors SEMI JOIN keys USING (repo_id, revision)
    WHERE kind = 'weight' AND role IN ('attn_q', 'attn_k', 'attn_v', 'mlp_up', 'mlp_gate') AND layer IS NOT NULL
),
vecs AS (
    -- centred once: Pearson is the cosine of centred lists
    SELECT repo_id, revision, signal, role, layer, transposed, list_transform(v, lambda x: x - mu) AS c
    FROM (SELECT *, list_avg(v) AS mu FROM raw WHERE len(v) >= 8)
),
r AS (
    SELECT c.a_repo_id, c.a_revision, c.b_repo_id, c.b_revision, a.signal, a.role,
           a.layer AS la, b.layer AS lb, len(a.c) AS n,
           nullif(list_cosine_similarity(a.c, b.c), 'NaN'::DOUBLE) AS r
    FROM candidates AS c
    JOIN vecs AS a ON a.repo_id = c.a_repo_id AND a.revision = c.a_revision
    JOIN vecs AS b ON b.repo_id = c.b_repo_id AND b.revision = c.b_revision
        AND b.signal = a.signal AND b.role = a.role AND b.transposed = a.transposed AND len(b.c) = len(a.c)
),
per_role AS (
    -- the best layer pair of each role (one row for gain and dim_std)
    SELECT a_repo_id, a_revision, b_repo_id, b_revision, signal, role,
           max(r) AS r, arg_max(la, r) AS la, arg_max(lb, r) AS lb,
           count(r) AS tries, median(n) AS n
    FROM r WHERE r IS NOT NULL GROUP BY ALL
)
SELECT a_repo_id, a_revision, b_repo_id, b_revision,
       max(r) FILTER (WHERE signal = 'gain') AS gain,
       max(n) FILTER (WHERE signal = 'gain') AS gain_n,
       max(r) FILTER (WHERE signal = 'dim_std') AS dim_std,
       max(n) FILTER (WHERE signal = 'dim_std') AS dim_std_n,
       median(r) FILTER (WHERE signal = 'col_norms') AS col_norms,
       median(n) FILTER (WHERE signal = 'col_norms') AS col_norms_n,
       median(tries) FILTER (WHERE signal = 'col_norms') AS col_norms_tries,
       count(*) FILTER (WHERE signal = 'col_norms') AS col_norms_roles,
       list({'role': role, 'a_layer': la, 'b_layer': lb, 'r': r} ORDER BY role)
           FILTER (WHERE signal = 'col_norms') AS col_norms_map
FROM per_role
GROUP BY ALL
ORDER BY a_repo_id, a_revision, b_repo_id, b_revision;
