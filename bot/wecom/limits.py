"""WeCom smart-robot limits and error codes, with where each number comes from.

Sources: the official Node SDK (github.com/WecomTeam/aibot-node-sdk, src/client.ts,
src/types/api.ts), WeCom's page "智能机器人长连接" (developer.work.weixin.qq.com
/document/path/101463) as quoted by integrators, and codes integrators observed on the
wire. Codes marked "assumed" are WeCom's general error codes picked where the robot
documentation names none.
"""

from __future__ import annotations

# Content limits (SDK types: "最长不超过 20480 个字节，必须是 utf8 编码").
MARKDOWN_MAX_BYTES = 20_480
STREAM_MAX_BYTES = 20_480
# Template cards (SDK types): button_list ≤ 6, keys ≤ 1024 bytes, button_selection
# option_list ≤ 10 (ids ≤ 128 bytes), task_id ≤ 128 bytes of [0-9A-Za-z_-@].
CARD_MAX_BUTTONS = 6
CARD_KEY_MAX_BYTES = 1_024
CARD_MAX_OPTIONS = 10
CARD_OPTION_ID_MAX_BYTES = 128
TASK_ID_MAX_BYTES = 128

# Uploads (SDK client.ts uploadMedia): 512 KiB per chunk before base64, at most 100.
UPLOAD_CHUNK_BYTES = 512 * 1024
UPLOAD_MAX_CHUNKS = 100
UPLOAD_MAX_BYTES = UPLOAD_CHUNK_BYTES * UPLOAD_MAX_CHUNKS
MEDIA_TYPES = ("file", "image", "voice", "video")

# Time windows: welcome and card updates within 5 s of the event (SDK client.ts);
# a stream may be refreshed for 10 minutes after the message (integrators quoting 101463).
EVENT_REPLY_SECONDS = 5.0
STREAM_REPLY_SECONDS = 600.0
# Per conversation: 30 messages a minute, 1,000 an hour, replies and pushes together
# (integrators quoting 101463).
CHAT_PER_MINUTE = 30
CHAT_PER_HOUR = 1_000

# Error codes.
ERR_OK = 0
ERR_BAD_CREDENTIALS = 853000  # observed: "invalid bot_id or secret" on a wrong secret
ERR_INVALID_REQ_ID = 846605  # observed: "invalid req_id" (wrong, used up or wrong kind)
ERR_STREAM_EXPIRED = 846608  # observed: "stream message update expired"
ERR_RATE_LIMITED = 45009  # assumed: WeCom's "api freq out of limit"
ERR_CONTENT_TOO_LONG = 45002  # assumed: WeCom's "content size out of limit"
ERR_INVALID_PARAM = 40058  # assumed: WeCom's "invalid parameter"
ERR_INVALID_MEDIA_ID = 40007  # assumed: WeCom's "invalid media_id"
ERR_INVALID_MSGTYPE = 40008  # observed: aibot_send_msg refuses msgtype text with it
ERR_CHAT_NOT_REACHABLE = 40003  # assumed: "invalid userid" for a chat that never wrote

# Subscription refusals that retrying cannot mend. Only the credential refusal is known
# to be one: the SDK (src/ws.ts) treats no subscribe errcode specially, and no other code
# is documented or observed as permanent, so every other refusal (45009, a server error,
# an unknown code) is retried with the normal back-off instead of stopping the robot.
SUBSCRIBE_PERMANENT_ERRORS = frozenset({ERR_BAD_CREDENTIALS})
