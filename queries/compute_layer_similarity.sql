-- purpose: layer-similarity matrix of every candidate pair, for layer maps: per (a_layer, b_layer) the median
--          element-aligned Pearson of the full sketches of same-role, same-expert, same-shape matrices, and the
--          median Pearson of input-column norms (q/k/v/up/gate) over the same roles; meant for flagged or
--          requested pairs only (it compares every layer with every layer on all sampled values)
-- params:  $min_values INTEGER = 64, $min_dims INTEGER = 8
--          ($min_dims: input-column norms over fewer dimensions than 8 give a Pearson that is mostly chance)
-- reads:   candidate_ids, candidate_models (number_candidates.sql), tensors   (views.sql)
WITH mats AS MATERIALIZED (
    -- centred once (Pearson is the cosine of centred lists); col-norms only where the role reads hidden dims
    SELECT row_number() OVER () AS tid, mid, role, layer, expert, shape, transposed,
           list_transform(sketch, lambda x: x - mu)::FLOAT[] AS c,
           CASE WHEN role IN ('attn_q', 'attn_k', 'attn_v', 'mlp_up', 'mlp_gate')
                     AND len(col_norms) >= $min_dims::INTEGER
                THEN list_transform(col_norms, lambda x: x - cmu)::FLOAT[] END AS cn
    FROM (
        SELECT k.mid, t.role, t.layer, coalesce(t.expert, -1) AS expert, t.shape, t.transposed, t.sketch,
               t.col_norms, list_avg(t.sketch) AS mu, list_avg(t.col_norms) AS cmu
        FROM candidate_models AS k JOIN tensors AS t USING (repo_id, revision)
        WHERE t.kind = 'weight' AND t.layer IS NOT NULL AND len(t.shape) = 2
          AND len(t.sketch) >= $min_values::INTEGER
    )
),
slots AS MATERIALIZED (
    SELECT tid, mid, role, layer, expert, shape, transposed, len(c) AS n, len(cn) AS cn_n FROM mats
),
matched AS MATERIALIZED (
    -- tensor ids first, lists after (joining the lists before the pairs is the slow plan)
    SELECT p.pid, a.layer AS a_layer, b.layer AS b_layer, a.role, a.n, a.cn_n, a.tid AS a_tid, b.tid AS b_tid
    FROM candidate_ids AS p
    JOIN slots AS a ON a.mid = p.a_mid
    JOIN slots AS b ON b.mid = p.b_mid
        AND b.role = a.role AND b.expert = a.expert AND b.shape = a.shape
        AND b.transposed = a.transposed AND b.n = a.n
),
r AS (
    SELECT m.pid, m.a_layer, m.b_layer, m.role, m.n, m.cn_n,
           nullif(list_cosine_similarity(a.c, b.c), 'NaN'::DOUBLE) AS r,
           nullif(list_cosine_similarity(a.cn, b.cn), 'NaN'::DOUBLE) AS cr
    FROM matched AS m
    JOIN mats AS a ON a.tid = m.a_tid
    JOIN mats AS b ON b.tid = m.b_tid
),
per_role AS (
    -- experts of one role (MoE vs MoE) count as one role: median over them first
    SELECT pid, a_layer, b_layer, role, median(r) AS r, median(cr) AS cr, median(n) AS n, median(cn_n) AS cn_n
    FROM r GROUP BY ALL
)
SELECT q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision, s.a_layer, s.b_layer,
       median(s.r) AS sketch_r, count(s.r) AS sketch_roles, median(s.n) AS sketch_len,
       median(s.cr) AS col_norms_r, count(s.cr) AS col_norms_roles, median(s.cn_n) AS col_norms_len
FROM per_role AS s
JOIN candidate_ids AS q USING (pid)
GROUP BY ALL
ORDER BY q.a_repo_id, q.a_revision, q.b_repo_id, q.b_revision, s.a_layer, s.b_layer;
