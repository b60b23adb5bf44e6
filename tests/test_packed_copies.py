"""GPTQ and AWQ copies of all-MiniLM-L6-v2 fingerprint like their base, read locally and through the fake Hub.

The packed Linears become logical ``<module>.weight`` tensors on the base's rows and sketch
positions, so every quantised matrix correlates with the base's at quantisation-noise level.
"""

from __future__ import annotations

import numpy as np
import pytest

from hubscan.pipeline.chain.model_task import fingerprint_model
from hubscan.pipeline.http import HubHttp
from hubscan.pipeline.sources import hf
from hubscan.pipeline.sources.local import local_model

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
GPTQ = "demohub/all-MiniLM-L6-v2-GPTQ"
AWQ = "demohub/minilm-awq"
PACKED = {GPTQ: "GPTQ-int4-g128", AWQ: "AWQ-int4-g64"}
# 4-bit rounding of MiniLM's matrices: worst sketch r measured 0.994, std within 0.8 %.
MIN_R = 0.99
MAX_STD_DEV = 0.03
BLOCK_LINEARS = 36  # 6 layers x (q, k, v, o, ffn in, ffn out)


def _remote(settings, repo_id):
    http = HubHttp(settings)
    out = fingerprint_model(hf.resolve(http, repo_id), settings, http)
    assert out.ok, out.errors
    return out


def _local(testbed, settings, repo_id):
    out = fingerprint_model(local_model(testbed / repo_id, repo_id), settings)
    assert out.ok, out.errors
    return out


def _check_against_base(out, base_rows, dtype):
    base = {r["name"]: r for r in base_rows}
    rows = {r["name"]: r for r in out.tensor_rows}
    assert set(rows) == set(base)  # no qweight/qzeros/scales/g_idx rows, nothing missing
    packed = [r for r in rows.values() if r["dtype"] == dtype]
    assert len(packed) == BLOCK_LINEARS
    for r in packed:
        b = base[r["name"]]
        assert (r["role"], r["layer"], r["kind"], r["shape"]) == (
            b["role"],
            b["layer"],
            b["kind"],
            b["shape"],
        )
        assert r["row_idx"] == b["row_idx"] and len(r["sketch"]) == len(b["sketch"]) == 2048
        assert np.corrcoef(r["sketch"], b["sketch"])[0, 1] >= MIN_R, r["name"]
        assert abs(r["std"] / b["std"] - 1) <= MAX_STD_DEV, r["name"]
        assert np.corrcoef(r["col_norms"], b["col_norms"])[0, 1] >= MIN_R, r["name"]
    assert out.model_row["dtype"] == dtype and out.model_row["params"] == sum(r["numel"] for r in base_rows)


@pytest.mark.parametrize("repo", [GPTQ, AWQ])
def test_packed_copy_read_locally_matches_its_base_matrix_by_matrix(testbed, settings, repo):
    base = _local(testbed, settings, MINILM)
    _check_against_base(_local(testbed, settings, repo), base.tensor_rows, PACKED[repo])


@pytest.mark.parametrize("repo", [GPTQ, AWQ])
def test_packed_copy_through_the_fake_hub_matches_local_and_counts_its_requests(testbed, settings, hub, repo):
    local = {r["name"]: r for r in _local(testbed, settings, repo).tensor_rows}
    hub.reset()
    remote = _remote(settings, repo)
    for r in remote.tensor_rows:
        assert r["sketch"] == local[r["name"]]["sketch"] and r["std"] == local[r["name"]]["std"]
    weights = hub.log.where(method="GET", repo_id=repo, filename="model.safetensors")
    assert len(weights) == remote.model_row["requests"] - 1  # and one for tokenizer.json
    # the weight file is resolved once; its ranges go to the CDN origin, in no Hub quota
    assert [w.status for w in weights if w.origin == "hub"] == [302]
    assert len([w for w in weights if w.origin == "cdn"]) == remote.model_row["cdn_requests"]
    assert sum(w.bytes_sent for w in weights) == remote.model_row["bytes_read"]
    assert not hub.log.where(filename="config.json")  # the listing's config summary was enough
    # packed parts are read whole: at least half a byte per quantised weight, far from the file
    packed_params = sum(r["numel"] for r in remote.tensor_rows if r["dtype"] == PACKED[repo])
    assert packed_params / 2 <= remote.model_row["bytes_read"] <= remote.model_row["checkpoint_bytes"] / 3
