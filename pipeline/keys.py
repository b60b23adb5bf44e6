"""The one key of a model revision, and of a pair of them, that every stage uses.

Plain tuples rather than a NamedTuple: keys come back from DuckDB and Arrow rows as tuples and
index dicts and sets everywhere; a class would need a conversion at each of those places.
"""

from __future__ import annotations

# (repo_id, revision): every stored table is keyed by a model revision.
ModelKey = tuple[str, str]
# (a_repo_id, a_revision, b_repo_id, b_revision): a pair is stored with its two keys side by side.
PairKey = tuple[str, str, str, str]
