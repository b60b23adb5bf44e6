-- purpose: views over the Parquet store; every other query reads only these
-- params:  (none)
-- reads:   models/, tensors/, failures/, files/, sweeps/, pairs/, layer_maps/ (*.parquet), under the store: getvariable('store')
--          (hubscan sets it to the folder or s3:// / gs:// prefix; in the duckdb CLI, leave it unset and
--          start the CLI inside the store folder)
CREATE OR REPLACE MACRO store_files(tbl) AS coalesce(getvariable('store'), '.') || '/' || tbl || '/*.parquet';

-- Compacted files are those the manifest names (hubscan sets compacted_<table>); in the duckdb CLI they
-- are left out unless set, and the table's empty loose file stands in.
CREATE OR REPLACE MACRO compacted_files(tbl) AS
coalesce(getvariable('compacted_' || tbl), [coalesce(getvariable('store'), '.') || '/' || tbl || '/_empty.parquet']);

-- One row per committed model. Loose files are the commit unit; a model both loose and compacted (a
-- compaction killed before its clean-up, or a model re-fingerprinted since) is taken from its loose file.
CREATE OR REPLACE VIEW loose_models AS
SELECT * FROM read_parquet(store_files('models'), union_by_name = true);

CREATE OR REPLACE VIEW models AS
SELECT * FROM loose_models
UNION ALL BY NAME
SELECT c.* FROM read_parquet(compacted_files('models'), union_by_name = true) AS c
ANTI JOIN loose_models AS l ON c.repo_id = l.repo_id AND c.revision = l.revision;

-- Tensors of committed models only: a run killed between writing a model's tensors and
-- its models row leaves a tensors file that no query sees until the model is re-run.
CREATE OR REPLACE VIEW tensors AS
SELECT t.*
FROM read_parquet(store_files('tensors'), union_by_name = true) AS t
SEMI JOIN loose_models AS m ON t.repo_id = m.repo_id AND t.revision = m.revision
UNION ALL BY NAME
SELECT t.*
FROM read_parquet(compacted_files('tensors'), union_by_name = true) AS t
ANTI JOIN loose_models AS m ON t.repo_id = m.repo_id AND t.revision = m.revision;

CREATE OR REPLACE VIEW failures AS
SELECT * FROM read_parquet(store_files('failures'), union_by_name = true);

-- Weight files by content hash, of committed models only (written, like tensors, before the models row).
CREATE OR REPLACE VIEW files AS
SELECT f.*
FROM read_parquet(store_files('files'), union_by_name = true) AS f
SEMI JOIN loose_models AS m ON f.repo_id = m.repo_id AND f.revision = m.revision
UNION ALL BY NAME
SELECT f.*
FROM read_parquet(compacted_files('files'), union_by_name = true) AS f
ANTI JOIN loose_models AS m ON f.repo_id = m.repo_id AND f.revision = m.revision;

-- One row per sweep run: its listing filters, counts and requests (the cursor files beside them are JSON).
CREATE OR REPLACE VIEW sweeps AS
SELECT * FROM read_parquet(store_files('sweeps'), union_by_name = true);

-- The per-layer std profile of the attention projections: the statistic of the original
-- Pangu/Qwen claim. Kept for comparison, never trusted alone.
CREATE OR REPLACE VIEW std_profiles AS
SELECT repo_id, revision, role, layer, avg(std) AS std, count(*) AS tensors
FROM tensors
WHERE kind = 'weight' AND role IN ('attn_q', 'attn_k', 'attn_v', 'attn_o') AND layer IS NOT NULL
GROUP BY ALL;

-- Models of unknown architecture (no tensor has a role from the roles table) and their tensor layout:
-- the multiset of their matrices' shapes, which casts, re-uploads in another format and renamed copies
-- keep. Their comparability block (compute_layout_candidate_pairs.sql), in place of a hidden size.
CREATE OR REPLACE VIEW layouts AS
SELECT repo_id, revision,
       string_agg(CASE WHEN len(shape) >= 2 THEN array_to_string(shape, 'x') END, ','
                  ORDER BY array_to_string(shape, 'x')) AS layout
FROM tensors
GROUP BY ALL
HAVING bool_and(role = 'other') AND count(*) FILTER (len(shape) >= 2) > 0;

-- Candidate pairs the compute_*_scores.sql files score: by default every pair of models with the
-- same hidden size (the comparability block). `hubscan flag` redefines this view in its own
-- connection from compute_candidate_pairs.sql, which buckets large blocks instead (LSH).
CREATE OR REPLACE VIEW candidates AS
SELECT a.repo_id AS a_repo_id, a.revision AS a_revision, b.repo_id AS b_repo_id, b.revision AS b_revision,
       a.hidden, 'exhaustive' AS via
FROM models AS a
JOIN models AS b
  ON a.hidden = b.hidden AND (a.repo_id < b.repo_id OR (a.repo_id = b.repo_id AND a.revision < b.revision));

-- Scored pairs written by `hubscan flag` (one row per candidate pair: every signal, its
-- background, p/q-values, verdict, declared lineage).
CREATE OR REPLACE VIEW pairs AS
SELECT * FROM read_parquet(store_files('pairs'), union_by_name = true);

-- Layer and expert maps of structurally derived pairs, written by `hubscan flag` (flagged pairs whose
-- depth, layer order or experts differ) and `hubscan compare`.
CREATE OR REPLACE VIEW layer_maps AS
SELECT * FROM read_parquet(store_files('layer_maps'), union_by_name = true);
