-- purpose: the per-layer std of Q/K/V/O of one model (the statistic of the original Pangu/Qwen claim)
-- params:  $repo_id VARCHAR
-- reads:   std_profiles (views.sql)
SELECT
    layer,
    max(std) FILTER (WHERE role = 'attn_q') AS q,
    max(std) FILTER (WHERE role = 'attn_k') AS k,
    max(std) FILTER (WHERE role = 'attn_v') AS v,
    max(std) FILTER (WHERE role = 'attn_o') AS o
FROM std_profiles
WHERE repo_id = $repo_id
GROUP BY layer
ORDER BY layer;
