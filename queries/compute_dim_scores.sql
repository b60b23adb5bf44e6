-- purpose: per-hidden-dimension signals of every candidate pair, as Pearson (raw cosine of two positive
--          vectors is ~0.99 by construction): embedding LayerNorm gain, word-embedding per-dimension std,
--          and input-column norms of q/k/v/up/gate (best layer pair per role, median over roles)
-- params:  $min_dims INTEGER = 8
--          (a Pearson over fewer dimensions than 8 is mostly chance: its sd is ~1/sqrt(n - 3))
-- reads:   candidate_ids, candidate_models (number_candidates.sql), tensors   (views.sql)
WITH raw AS (
    SELECT k.mid, 'gain' AS signal, t.role, -1 AS layer, false AS transposed, t."values" AS v
    FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
    WHERE t.kind = 'weight' AND t.role = 'embed_norm'
    UNION ALL
    SELECT k.mid, 'dim_std', t.role, -1, false, t.dim_std
    FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
    WHERE t.kind = 'weight' AND t.role = 'embed'
    UNION ALL
    SELECT k.mid, 'col_norms', t.role, t.layer, t.transposed, t.col_norms
    FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
    WHERE t.kind = 'weight' AND t.role IN ('attn_q', 'attn_k', 'attn_v', 'mlp_up', 'mlp_gate')
      AND t.layer IS NOT NULL
),
vecs AS MATERIALIZED (
    -- centred once (Pearson is the cosine of centred lists); FLOAT halves what the joins carry
    SELECT mid, signal, role, layer, transposed, list_transform(v, lambda x: x - mu)::FLOAT[] AS c
    FROM (SELECT *, list_avg(v) AS mu FROM raw WHERE len(v) >= $min_dims::INTEGER)
),
r AS (
    SELECT p.pid, a.signal, a.role, a.layer AS la, b.layer AS lb, len(a.c) AS n,
           nullif(list_cosine_similarity(a.c, b.c), 'NaN'::DOUBLE) AS r
    FROM candidate_ids AS p
    JOIN vecs AS a ON a.mid = p.a_mid
    JOIN vecs AS b ON b.mid = p.b_mid
        AND b.signal = a.signal AND b.role = a.role AND b.transposed = a.transposed AND len(b.c) = len(a.c)
),
per_role AS (
    -- the best layer pair of each role (one row for gain and dim_std); ties to the lowest layers, one
    -- pair for both columns whatever the batching or threading
    SELECT pid, signal, role, max(r) AS r, arg_max(la, (r, -la, -lb)) AS la, arg_max(lb, (r, -la, -lb)) AS lb,
           count(r) AS tries, max(n) AS n
    FROM r WHERE r IS NOT NULL GROUP BY ALL
),
per_pair AS (
    SELECT pid,
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
    GROUP BY pid
)
SELECT q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision, d.* EXCLUDE (pid)
FROM per_pair AS d
JOIN candidate_ids AS q USING (pid)
ORDER BY q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision;
