-- purpose: the layer map and expert map of one pair (either order), newest written, one line per layer or
--          expert of the derived side: "B.layer 4 <- A.layer 2" with the deciding r, its chance tail, the
--          per-dimension col-norm r beside it, and whether it is beyond chance; for a two-parent stack also
--          its combined map (kind 'stack': "B.layer 5 <- org/other-parent.layer 7" for the third model's layers)
-- params:  $a_repo_id VARCHAR, $b_repo_id VARCHAR
-- reads:   layer_maps   (views.sql)
WITH pair AS (
    SELECT * FROM layer_maps
    WHERE (a_repo_id = $a_repo_id AND b_repo_id = $b_repo_id)
       OR (a_repo_id = $b_repo_id AND b_repo_id = $a_repo_id)
),
newest AS (
    SELECT * FROM pair
    WHERE written_at = (SELECT max(written_at) FROM pair)
),
sides AS (
    SELECT *,
           CASE WHEN derived = 'a' THEN 'A' ELSE 'B' END AS d_name,
           CASE WHEN derived = 'a' THEN 'B' ELSE 'A' END AS s_name,
           CASE WHEN derived = 'a' THEN a_layer ELSE b_layer END AS d_layer,
           CASE WHEN derived = 'a' THEN a_expert ELSE b_expert END AS d_expert,
           CASE WHEN derived = 'a' THEN b_layer ELSE a_layer END AS s_layer,
           CASE WHEN derived = 'a' THEN b_expert ELSE a_expert END AS s_expert
    FROM newest
)
SELECT kind, structure,
       d_name || '.layer ' || d_layer || coalesce(' expert ' || d_expert, '') || ' <- ' ||
       CASE WHEN kind = 'stack' AND s_layer IS NULL THEN parent_repo_id || '.layer ' || parent_layer
            WHEN NOT matched OR s_layer IS NULL THEN 'no match beyond chance'
            ELSE s_name || '.layer ' || s_layer ||
                 CASE WHEN s_expert IS NOT NULL THEN ' expert ' || s_expert
                      WHEN kind = 'expert' AND slice_lo IS NOT NULL
                          THEN ' MLP rows ' || slice_lo || '-' || (slice_hi - 1)
                      WHEN kind = 'expert' THEN ' MLP'
                      ELSE '' END
       END AS map,
       round(r, 5) AS r, round(alt_r, 5) AS alt_r, round(col_norms_r, 3) AS col_norms_r, evidence,
       round(log10_p, 1) AS log10_p, matched, summary, source,
       a_repo_id, b_repo_id, parent_repo_id
FROM sides
ORDER BY kind DESC, d_layer, d_expert;
