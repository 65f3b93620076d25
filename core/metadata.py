"""The contract's ``metadata`` from a yt-dlp info dict: real values only, absent when unknown."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any


def as_float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


_HANDLE = re.compile(r"^@?[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$")
_URL_HANDLE = re.compile(r"/@([A-Za-z0-9_.][A-Za-z0-9_.-]*)")
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)", re.UNICODE)


def _handle(info: dict[str, Any]) -> str | None:
    # TikTok: `uploader` is the unique handle, `uploader_id` the numeric account id, `channel` the nickname.
    for key in ("uploader", "uploader_id"):
        value = info.get(key)
        if isinstance(value, str) and _HANDLE.match(value) and not value.isdigit():
            return value.lstrip("@")
    for key in ("uploader_url", "webpage_url", "original_url"):
        m = _URL_HANDLE.search(str(info.get(key) or ""))
        if m:
            return m.group(1)
    return None


def metadata_from_info(info: dict[str, Any]) -> dict[str, Any]:
    """Contract ``metadata`` keys with real values from a yt-dlp info dict (absent when unknown).

    ``hashtags`` are tag names without ``#``: yt-dlp's ``tags``, else the ``#words`` of the
    description. ``title`` is dropped when yt-dlp only derived it from the URL (direct links).
    """
    meta: dict[str, Any] = {}
    if info.get("id"):
        meta["videoId"] = str(info["id"])
    title = info.get("title")
    derived = info.get("direct") or title in (info.get("id"), f"{info.get('extractor')} video #{info.get('id')}")
    if isinstance(title, str) and title.strip() and not derived:
        title = " ".join(title.split())
        meta["title"] = title if len(title) <= 80 else title[:79].rstrip() + "…"
    handle = _handle(info)
    if handle:
        meta["author"] = "@" + handle
    display = next((v for v in (info.get("channel"), info.get("creator"), *(info.get("creators") or []),
                                info.get("uploader")) if isinstance(v, str) and v.strip()), None)
    if display and display.lstrip("@") != handle:
        meta["authorDisplayName"] = display
    for key, src in (("description", "description"), ("thumbnail", "thumbnail")):
        if isinstance(info.get(src), str) and info[src].strip():
            meta[key] = info[src]
    for key, src in (("viewCount", "view_count"), ("likeCount", "like_count"), ("commentCount", "comment_count")):
        if isinstance(info.get(src), (int, float)):
            meta[key] = int(info[src])
    upload = info.get("upload_date")
    if isinstance(upload, str) and re.fullmatch(r"\d{8}", upload):
        meta["uploadDate"] = f"{upload[:4]}-{upload[4:6]}-{upload[6:]}"
    elif isinstance(info.get("timestamp"), (int, float)):
        meta["uploadDate"] = datetime.fromtimestamp(info["timestamp"], timezone.utc).date().isoformat()
    tags = [t.strip().lstrip("#") for t in info.get("tags") or [] if isinstance(t, str) and t.strip().lstrip("#")]
    if not tags:
        tags = _HASHTAG.findall(info.get("description") or "")
    if tags:
        meta["hashtags"] = list(dict.fromkeys(tags))
    artists = info.get("artists") or ([info["artist"]] if info.get("artist") else [])
    music = {k: v for k, v in (("title", info.get("track")), ("author", ", ".join(a for a in artists if a)))
             if isinstance(v, str) and v}
    if music:
        meta["music"] = music
    duration = as_float(info.get("duration"))
    if duration is not None:
        meta["duration"] = duration
    return meta
