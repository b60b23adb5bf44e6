-- purpose: one line per fingerprinted model revision: shape, format, and what reading it cost
-- params:  $pattern VARCHAR = '%'
-- reads:   models (views.sql)
SELECT
    repo_id,
    left(revision, 7) AS rev,
    format,
    architecture,
    layers,
    hidden,
    vocab,
    params,
    dtype,
    base_models,
    bytes_read,
    checkpoint_bytes,
    round(100.0 * bytes_read / nullif(checkpoint_bytes, 0), 3) AS pct_read,
    requests
FROM models
WHERE repo_id LIKE $pattern
ORDER BY repo_id;
