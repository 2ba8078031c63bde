"""Sample STAC collections and a registered mosaic search for the local stack's pgstac database.

One collection per sample bucket (one item each, pointing at that bucket's sample COG), so a mosaic over all of
them exercises per-asset provider credentials; the registered search is what `/searches/{id}/...` serves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from local_stack.pgstac_db import load_collections, load_items, stac_collection, stac_item
from local_stack.samples import DEFAULT_BOUNDS

SEARCH_NAME = "local-stack samples"


def collection_id(bucket: str) -> str:
    return f"sample-{bucket}"


def load_samples(dsn: str, samples: Mapping[str, str]) -> list[str]:
    """Load one collection + item per `bucket -> s3:// URL`; returns the collection ids."""
    ids = [collection_id(bucket) for bucket in samples]
    load_collections(
        dsn, [stac_collection(collection_id(b), DEFAULT_BOUNDS, f"Sample COG in s3://{b}") for b in samples]
    )
    load_items(dsn, [stac_item(collection_id(b), f"{b}-sample", url, DEFAULT_BOUNDS) for b, url in samples.items()])
    return ids


def register_search(dsn: str, collections: list[str]) -> str:
    """Register a mosaic search over `collections` (pgstac's `search_query`, as titiler.pgstac does); returns its id."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, options="-c search_path=pgstac,public") as conn:
        row = conn.execute(
            "SELECT hash FROM search_query(%s::jsonb, _metadata => %s::jsonb)",
            (json.dumps({"collections": collections}), json.dumps({"name": SEARCH_NAME})),
        ).fetchone()
    if row is None:
        raise RuntimeError("pgstac did not register the sample search")
    return str(row[0])
