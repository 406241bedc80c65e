"""A versioned cache-aside store on Redis where the newest version always wins.

Values are stored as ``<version>:<json>``. Writers (the projector after commit, and a
query API filling a miss) go through one Lua script that stores a value only when its
version is at least the cached one. A reader that loaded version 4 from PostgreSQL just
before the projector committed version 5 therefore cannot overwrite the 5 with its 4:
the stale fill loses the read-fill/invalidate race (DESIGN.md §5).
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError

# KEYS[1] = key; ARGV[1] = version; ARGV[2] = payload; ARGV[3] = ttl seconds.
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, ':', 1, true)
  if sep and tonumber(string.sub(current, 1, sep - 1)) > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
return 1
"""

#: Writers send the script's SHA1 (EVALSHA), not its text, and load it only when the server
#: does not know it: first use, or after a restart or ``SCRIPT FLUSH`` (NOSCRIPT).
SET_IF_NEWER_SHA = hashlib.sha1(SET_IF_NEWER.encode()).hexdigest()


def pack(version: int, payload: bytes) -> bytes:
    """The stored form of ``payload`` at ``version``."""
    return str(version).encode() + b":" + payload


def unpack(raw: bytes) -> tuple[int, bytes]:
    """``(version, payload)`` from a stored value."""
    version, _, payload = raw.partition(b":")
    return int(version), payload


async def set_if_newer(client: Any, key: str, version: int, payload: bytes, ttl: int) -> bool:
    """Store unless the cache holds a newer version (asyncio client)."""
    try:
        return bool(await client.evalsha(SET_IF_NEWER_SHA, 1, key, version, payload, ttl))
    except NoScriptError:
        await client.script_load(SET_IF_NEWER)
        return bool(await client.evalsha(SET_IF_NEWER_SHA, 1, key, version, payload, ttl))
