"""Bot API error answers, shaped exactly like Telegram's so PTB raises its real exceptions."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answer: HTTP ``status`` plus ``{"ok": false, "error_code", "description"}``."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def to_json(self) -> dict[str, Any]:
        """The response body Telegram would send."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = dict(self.parameters)
        return body


def bad_request(reason: str) -> ApiError:
    """400 ``Bad Request: <reason>`` (PTB: ``BadRequest``)."""
    return ApiError(400, f"Bad Request: {reason}")


def forbidden(reason: str) -> ApiError:
    """403 ``Forbidden: <reason>`` (PTB: ``Forbidden``)."""
    return ApiError(403, f"Forbidden: {reason}")


def too_many_requests(retry_after: int) -> ApiError:
    """429 with ``parameters.retry_after`` (PTB: ``RetryAfter``)."""
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


def chat_migrated(new_chat_id: int) -> ApiError:
    """400 with ``parameters.migrate_to_chat_id`` (PTB: ``ChatMigrated``)."""
    return ApiError(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        {"migrate_to_chat_id": new_chat_id},
    )


def blocked(chat_type: str | None) -> ApiError:
    """The 403 Telegram sends when the bot can no longer write to a chat of this type."""
    if chat_type == "group":
        return forbidden("bot was kicked from the group chat")
    if chat_type == "supergroup":
        return forbidden("bot was kicked from the supergroup chat")
    if chat_type == "channel":
        return forbidden("bot is not a member of the channel chat")
    return forbidden("bot was blocked by the user")


def not_found() -> ApiError:
    """404 for unknown methods and files."""
    return ApiError(404, "Not Found")


def unauthorized() -> ApiError:
    """401 for a token that is not this bot's (PTB: ``InvalidToken``)."""
    return ApiError(401, "Unauthorized")


def supergroup_id_for(chat_id: int) -> int:
    """The ``-100…`` id Telegram gives a basic group once upgraded to a supergroup."""
    return int(f"-100{abs(chat_id)}")
