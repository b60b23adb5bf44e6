"""The per-model chain: one model revision through source, reader and fingerprint into store records."""
