"""What each shipped query returns on the query store of tests/test_queries.py (testbed models, flagged).

Per file: the row count, the columns pinned, and the distinct rows of those columns with floats rounded
to 2 decimals (sampled fingerprints move a signal in its 4th decimal at most). A new query file adds
its entry; a query whose result changes on purpose changes its entry in the same commit.
"""

EXPECTED = {
    # no adapter among the query store's models: the query runs and lists none (tests/test_adapters.py lists some)
    "adapters.sql": (0, ("repo_id", "fit"), []),
    "check_declared_bases.sql": (
        2,
        ("repo_id", "base", "status"),
        [
            (
                "licbed/minilm-l3-nolicence",
                "sentence-transformers/paraphrase-MiniLM-L3-v2",
                "base not fingerprinted",
            ),
            (
                "sentence-transformers/all-MiniLM-L6-v2",
                "nreimers/MiniLM-L6-H384-uncased",
                "base not fingerprinted",
            ),
        ],
    ),
    "compare_std_profiles.sql": (
        5,
        ("role", "layers", "r"),
        [("attn_k", 6, 1.0), ("attn_o", 6, 1.0), ("attn_q", 6, 1.0), ("attn_v", 6, 1.0), ("mean", 6, 1.0)],
    ),
    "compute_candidate_pairs.sql": (
        3,
        ("a_repo_id", "b_repo_id", "via"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", "lsh"),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", "lsh"),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", "lsh"),
        ],
    ),
    "compute_dim_scores.sql": (
        3,
        ("a_repo_id", "b_repo_id", "gain"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", 0.91),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", 1.0),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", 0.91),
        ],
    ),
    "compute_layer_similarity.sql": (
        72,
        ("a_repo_id", "b_repo_id"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence"),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2"),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2"),
        ],
    ),
    "compute_layout_candidate_pairs.sql": (
        1,
        ("a_repo_id", "b_repo_id"),
        [("demohub/tiny-cnn-s0-finetuned", "vision-lab/tiny-cnn-s0")],
    ),
    "compute_layout_scores.sql": (
        3,
        ("a_repo_id", "b_repo_id", "sketch"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", 0.02),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", 1.0),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", 0.0),
        ],
    ),
    "compute_sketch_scores.sql": (
        3,
        ("a_repo_id", "b_repo_id", "sketch"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", -0.01),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", 1.0),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", -0.01),
        ],
    ),
    "compute_sorted_scores.sql": (
        3,
        ("a_repo_id", "b_repo_id", "sorted"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", 0.98),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", 1.0),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", 0.98),
        ],
    ),
    "compute_token_scores.sql": (
        3,
        ("a_repo_id", "b_repo_id", "tokens"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", 0.9),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", 1.0),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", 0.9),
        ],
    ),
    "count_failures.sql": (1, ("category", "models"), [("UnsafeContent", 1)]),
    "export_suspicious_pairs.sql": (
        4,
        ("a_repo_id", "b_repo_id", "verdict"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", "same lineage"),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", "fine-tune"),
            ("demohub/tiny-cnn-s0-finetuned", "vision-lab/tiny-cnn-s0", "fine-tune"),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", "same lineage"),
        ],
    ),
    "families.sql": (
        5,
        ("family", "repo_id", "is_root"),
        [
            (1, "demohub/minilm-l6-finetuned", True),
            (1, "licbed/minilm-l3-nolicence", False),
            (1, "sentence-transformers/all-MiniLM-L6-v2", False),
            (2, "demohub/tiny-cnn-s0-finetuned", True),
            (2, "vision-lab/tiny-cnn-s0", False),
        ],
    ),
    "find_licence_conflicts.sql": (
        2,
        ("a_repo_id", "b_repo_id", "a_license", "b_license"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", "apache-2.0", None),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", None, "apache-2.0"),
        ],
    ),
    "find_nearest_models.sql": (
        2,
        ("repo_id", "verdict", "declared"),
        [
            ("demohub/minilm-l6-finetuned", "fine-tune", False),
            ("licbed/minilm-l3-nolicence", "same lineage", False),
        ],
    ),
    "find_undeclared_derivatives.sql": (
        1,
        ("base", "undeclared_relatives", "relatives"),
        [
            (
                "sentence-transformers/all-MiniLM-L6-v2",
                2,
                ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence"),
            )
        ],
    ),
    "list_mlp_tensors.sql": (
        30,
        ("repo_id", "role"),
        [
            ("demohub/minilm-l6-finetuned", "mlp_down"),
            ("demohub/minilm-l6-finetuned", "mlp_up"),
            ("licbed/minilm-l3-nolicence", "mlp_down"),
            ("licbed/minilm-l3-nolicence", "mlp_up"),
            ("sentence-transformers/all-MiniLM-L6-v2", "mlp_down"),
            ("sentence-transformers/all-MiniLM-L6-v2", "mlp_up"),
        ],
    ),
    "list_layer_sketches.sql": (
        90,
        ("repo_id", "role"),
        [
            ("demohub/minilm-l6-finetuned", "attn_k"),
            ("demohub/minilm-l6-finetuned", "attn_o"),
            ("demohub/minilm-l6-finetuned", "attn_q"),
            ("demohub/minilm-l6-finetuned", "attn_v"),
            ("demohub/minilm-l6-finetuned", "mlp_down"),
            ("demohub/minilm-l6-finetuned", "mlp_up"),
            ("licbed/minilm-l3-nolicence", "attn_k"),
            ("licbed/minilm-l3-nolicence", "attn_o"),
            ("licbed/minilm-l3-nolicence", "attn_q"),
            ("licbed/minilm-l3-nolicence", "attn_v"),
            ("licbed/minilm-l3-nolicence", "mlp_down"),
            ("licbed/minilm-l3-nolicence", "mlp_up"),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_k"),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_o"),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_q"),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_v"),
            ("sentence-transformers/all-MiniLM-L6-v2", "mlp_down"),
            ("sentence-transformers/all-MiniLM-L6-v2", "mlp_up"),
        ],
    ),
    "list_std_profiles.sql": (
        12,
        ("repo_id", "role", "layers"),
        [
            ("demohub/minilm-l6-finetuned", "attn_k", (0, 1, 2, 3, 4, 5)),
            ("demohub/minilm-l6-finetuned", "attn_o", (0, 1, 2, 3, 4, 5)),
            ("demohub/minilm-l6-finetuned", "attn_q", (0, 1, 2, 3, 4, 5)),
            ("demohub/minilm-l6-finetuned", "attn_v", (0, 1, 2, 3, 4, 5)),
            ("licbed/minilm-l3-nolicence", "attn_k", (0, 1, 2)),
            ("licbed/minilm-l3-nolicence", "attn_o", (0, 1, 2)),
            ("licbed/minilm-l3-nolicence", "attn_q", (0, 1, 2)),
            ("licbed/minilm-l3-nolicence", "attn_v", (0, 1, 2)),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_k", (0, 1, 2, 3, 4, 5)),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_o", (0, 1, 2, 3, 4, 5)),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_q", (0, 1, 2, 3, 4, 5)),
            ("sentence-transformers/all-MiniLM-L6-v2", "attn_v", (0, 1, 2, 3, 4, 5)),
        ],
    ),
    "show_layer_map.sql": (
        6,
        ("kind", "map", "r"),
        [
            ("layer", "B.layer 0 <- A.layer 0", 1.0),
            ("layer", "B.layer 1 <- A.layer 1", 1.0),
            ("layer", "B.layer 2 <- A.layer 2", 1.0),
            ("layer", "B.layer 3 <- A.layer 3", 1.0),
            ("layer", "B.layer 4 <- A.layer 4", 1.0),
            ("layer", "B.layer 5 <- A.layer 5", 1.0),
        ],
    ),
    "show_model_family.sql": (
        3,
        ("repo_id", "hops", "verdict"),
        [
            ("demohub/minilm-l6-finetuned", 1, "fine-tune"),
            ("licbed/minilm-l3-nolicence", 1, "same lineage"),
            ("sentence-transformers/all-MiniLM-L6-v2", 0, "self"),
        ],
    ),
    "show_models.sql": (
        1,
        ("repo_id", "format", "architecture", "layers", "hidden"),
        [("sentence-transformers/all-MiniLM-L6-v2", "safetensors", "BertModel", 6, 384)],
    ),
    "show_std_profile.sql": (
        6,
        ("layer", "q"),
        [(0, 0.09), (1, 0.09), (2, 0.08), (3, 0.08), (4, 0.08), (5, 0.08)],
    ),
    # the candidate steps of candidate_pairs(), each read after the temp tables before it
    "compute_background_pairs.sql": (
        3,
        ("a_repo_id", "b_repo_id"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence"),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2"),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2"),
        ],
    ),
    "compute_candidate_blocks.sql": (
        3,
        ("repo_id", "hidden"),
        [
            ("demohub/minilm-l6-finetuned", 384),
            ("licbed/minilm-l3-nolicence", 384),
            ("sentence-transformers/all-MiniLM-L6-v2", 384),
        ],
    ),
    "compute_exhaustive_pairs.sql": (
        3,
        ("a_repo_id", "b_repo_id"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence"),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2"),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2"),
        ],
    ),
    "compute_lsh_codes.sql": (
        144,
        ("repo_id", "hidden"),
        [
            ("demohub/minilm-l6-finetuned", 384),
            ("licbed/minilm-l3-nolicence", 384),
            ("sentence-transformers/all-MiniLM-L6-v2", 384),
        ],
    ),
    "compute_lsh_collisions.sql": (
        3,
        ("a_mid", "b_mid"),  # models by number in key order: finetuned 0, nolicence 1, MiniLM 2
        [(0, 1), (0, 2), (1, 2)],
    ),
    "compute_lsh_pairs.sql": (
        3,
        ("a_mid", "b_mid"),  # models by number in key order: finetuned 0, nolicence 1, MiniLM 2
        [(0, 1), (0, 2), (1, 2)],
    ),
    "compute_lineage_pairs.sql": (
        3,
        ("a_repo_id", "b_repo_id", "via"),
        [
            ("demohub/minilm-l6-finetuned", "licbed/minilm-l3-nolicence", "lsh"),
            ("demohub/minilm-l6-finetuned", "sentence-transformers/all-MiniLM-L6-v2", "lsh"),
            ("licbed/minilm-l3-nolicence", "sentence-transformers/all-MiniLM-L6-v2", "lsh"),
        ],
    ),
    "compute_lsh_signatures.sql": (
        6,
        ("repo_id", "hidden"),
        [
            ("demohub/minilm-l6-finetuned", 384),
            ("licbed/minilm-l3-nolicence", 384),
            ("sentence-transformers/all-MiniLM-L6-v2", 384),
        ],
    ),
}
