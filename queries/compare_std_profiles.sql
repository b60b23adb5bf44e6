-- purpose: the seed's std-profile correlation for two models of equal depth, per projection and averaged;
--          reported for comparison only: unrelated same-shape models score 0.94 on it
-- params:  $a VARCHAR, $b VARCHAR
-- reads:   std_profiles (views.sql)
WITH a AS (SELECT role, layer, std FROM std_profiles WHERE repo_id = $a),
     b AS (SELECT role, layer, std FROM std_profiles WHERE repo_id = $b),
     per_role AS (
        SELECT a.role, corr(a.std, b.std) AS r, count(*) AS layers
        FROM a JOIN b USING (role, layer)
        GROUP BY a.role
     )
SELECT role, r, layers FROM per_role
UNION ALL
SELECT 'mean', avg(r), min(layers) FROM per_role
ORDER BY role;
