-- purpose: views over the Parquet store; every other query reads only these
-- params:  (none)
-- reads:   models/*.parquet, tensors/*.parquet, failures/*.parquet, relative to the store folder
--          (hubscan sets file_search_path; in the duckdb CLI, start it inside the store folder)
CREATE OR REPLACE VIEW models AS
SELECT * FROM read_parquet('models/*.parquet', union_by_name = true);

-- Tensors of committed models only: a run killed between writing a model's tensors and
-- its models row leaves a tensors file that no query sees until the model is re-run.
CREATE OR REPLACE VIEW tensors AS
SELECT t.*
FROM read_parquet('tensors/*.parquet', union_by_name = true) AS t
SEMI JOIN models AS m ON t.repo_id = m.repo_id AND t.revision = m.revision;

CREATE OR REPLACE VIEW failures AS
SELECT * FROM read_parquet('failures/*.parquet', union_by_name = true);

-- The per-layer std profile of the attention projections: the statistic of the original
-- Pangu/Qwen claim. Kept for comparison, never trusted alone.
CREATE OR REPLACE VIEW std_profiles AS
SELECT repo_id, revision, role, layer, avg(std) AS std, count(*) AS tensors
FROM tensors
WHERE kind = 'weight' AND role IN ('attn_q', 'attn_k', 'attn_v', 'attn_o') AND layer IS NOT NULL
GROUP BY ALL;
