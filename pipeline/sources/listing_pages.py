"""Listing pages of ``/api/models``, followed through ``Link: rel="next"`` without trusting the link.

The next link is the server's word: it may be relative (legal per RFC 8288, resolved against the
request URL by RFC 3986), loop back to a page already read, point at another scheme, origin or
path, or never end. Only http(s) links to the endpoint's own ``/api/models`` are followed (the
listing is the endpoint's API, and the token goes with every request to that origin: a link to
``/api/models/other/private`` would read a repo no listing named); a URL already requested, or
more than ``Settings.max_listing_pages`` pages, ends the listing with one line. A sweep's saved
cursor is such a link too, and passes the same check before it is resumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx2

from hubscan.pipeline.errors import BadListing
from hubscan.pipeline.http import HubHttp, Where
from hubscan.pipeline.names import shown

LISTING = Where("<listing>")

# /api/models query parameters: strings and numbers, and lists for repeated keys (filter, expand).
ListingQuery = dict[str, str | int | list[str]]


def list_pages(
    http: HubHttp, params: ListingQuery | None = None, start_url: str | None = None
) -> Iterator[tuple[list[Any], str | None]]:
    """Listing pages as (entries, next page URL), following ``Link: rel="next"``.

    The next URL carries the Hub's opaque cursor and every filter, so a sweep that stores it
    can resume the listing where it stopped (``start_url``). Entries are returned as the server
    sent them: each is checked where it becomes a model (``hf.model_ref_from_info``).

    Raises:
        FetchError, RateLimited: a page could not be had after retries.
        BadListing: a page that is not a JSON array, or a next link that is refused (another
            scheme or origin, a page already read, past the page budget).
    """
    url: str | None = followable(http.endpoint, start_url) if start_url else listing_url(http.endpoint)
    query: ListingQuery | None = None if start_url else dict(params or {})
    seen: set[str] = set()
    while url:
        if len(seen) >= http.settings.max_listing_pages:
            raise BadListing(
                LISTING.repo_id,
                None,
                None,
                f"listing still going after {len(seen)} pages (max_listing_pages)",
            )
        page, response = http.get_json(url, LISTING, params=query)
        seen.add(str(response.request.url))
        if not isinstance(page, list):
            raise BadListing(
                LISTING.repo_id, None, None, f"listing page is a {type(page).__name__}, not a list"
            )
        try:
            url = _next(http, response, seen)
        except BadListing:
            yield page, None  # the page itself is good: its models are swept before the listing ends
            raise
        query = None  # the next link already carries the cursor and every filter
        yield page, url


def _next(http: HubHttp, response: httpx2.Response, seen: set[str]) -> str | None:
    """The next page's absolute URL, or None on the last page.

    Raises:
        BadListing: the link is refused, or names a page this listing already read.
    """
    link = _next_link(response)
    if link is None:
        return None
    url = followable(http.endpoint, link, base=str(response.request.url))
    if str(httpx2.URL(url)) in seen:
        raise BadListing(
            LISTING.repo_id, None, None, f"next-page link {shown(link)} loops back to a page already read"
        )
    return url


def _next_link(response: httpx2.Response) -> str | None:
    """The raw ``rel="next"`` target of the ``Link`` header; a header that does not parse has none."""
    try:
        found = response.links.get("next", {}).get("url")
    except (ValueError, IndexError, KeyError):
        return None
    return found if isinstance(found, str) and found else None


def listing_url(endpoint: str) -> str:
    """The endpoint's model listing, the only URL a next-page link may name (with any query)."""
    return f"{endpoint.rstrip('/')}/api/models"


def followable(endpoint: str, link: str, base: str | None = None, what: str = "next-page link") -> str:
    """``link`` (resolved against ``base``, RFC 3986) when it is http(s) to the endpoint's own listing.

    Raises:
        BadListing: another scheme (``file://``, ``ftp:``, ``javascript:``…), another host or
            port, another path than the listing's, or a URL that does not parse.
    """
    url = link
    try:
        url = urljoin(base, link) if base else link
        parts, home = urlsplit(url), urlsplit(listing_url(endpoint))
        same = (parts.scheme, parts.hostname, parts.port) == (home.scheme, home.hostname, home.port)
    except ValueError:
        same = False
    if not same or parts.scheme not in ("http", "https"):
        raise BadListing(LISTING.repo_id, None, None, f"{what} {shown(link)} leaves the endpoint {endpoint}")
    if parts.path != home.path:
        raise BadListing(
            LISTING.repo_id,
            None,
            None,
            f"{what} {shown(link)} is not the endpoint's listing {listing_url(endpoint)}",
        )
    return url
