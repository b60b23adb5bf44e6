-- purpose: PEFT adapters in the store with their declared base, type, rank, alpha, targets and adapted
--          layers, and whether they fit the base's stored layout (hidden and MLP width, depth)
-- params:  (none)
-- reads:   models   (views.sql)
WITH adapters AS (
    SELECT * FROM models WHERE adapter_type IS NOT NULL
),
bases AS (
    -- the newest fingerprint of each declared base (a base may be stored at several revisions)
    SELECT repo_id, arg_max(revision, fingerprinted_at) AS revision, arg_max(hidden, fingerprinted_at) AS hidden,
           arg_max(intermediate, fingerprinted_at) AS intermediate, arg_max(layers, fingerprinted_at) AS layers
    FROM models
    WHERE adapter_type IS NULL AND repo_id IN (SELECT adapter_base FROM adapters)
    GROUP BY repo_id
)
SELECT a.repo_id, a.revision, a.adapter_type AS type, a.adapter_base AS base, b.revision AS base_revision,
       a.adapter_rank AS rank, a.adapter_alpha AS alpha, a.adapter_targets AS targets,
       a.adapter_layers AS layers, a.hidden, b.hidden AS base_hidden,
       CASE
           WHEN a.adapter_base IS NULL THEN 'no declared base'
           WHEN b.repo_id IS NULL THEN 'base not in the store'
           -- IA3 scales k/v outputs and the MLP's input: under grouped-query attention neither is the hidden size
           WHEN a.hidden IS NULL THEN 'unknown: the adapter''s tensors imply no hidden size'
           WHEN a.hidden IS DISTINCT FROM b.hidden
               THEN printf('does not fit: base hidden %s, adapter %s', b.hidden::VARCHAR, a.hidden::VARCHAR)
           WHEN a.intermediate IS NOT NULL AND a.intermediate IS DISTINCT FROM b.intermediate
               THEN printf('does not fit: base MLP width %s, adapter %s', b.intermediate::VARCHAR, a.intermediate::VARCHAR)
           WHEN len(a.adapter_layers) > 0 AND list_max(a.adapter_layers) >= b.layers
               THEN printf('does not fit: base has %s layers, adapter adapts layer %s', b.layers::VARCHAR,
                           list_max(a.adapter_layers)::VARCHAR)
           ELSE 'fits'
       END AS fit
FROM adapters AS a
LEFT JOIN bases AS b ON b.repo_id = a.adapter_base
ORDER BY a.repo_id, a.revision;
