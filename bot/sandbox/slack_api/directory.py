"""Who is who: auth.test (the bot itself), users.info and usergroups.users.list."""

from __future__ import annotations

from typing import Any

from bot.sandbox.slack_api.wire import Handler, SlackError
from bot.sandbox.slack_api.workspace import WorkspaceState


class DirectoryMethods:
    """The methods that say who the bot, a user or a user group's members are."""

    def __init__(self, workspace: WorkspaceState) -> None:
        self._workspace = workspace

    def handlers(self) -> dict[str, Handler]:
        """Each method's handler, by its Web API name."""
        return {
            "auth.test": self.auth_test,
            "users.info": self.users_info,
            "usergroups.users.list": self.usergroup_members,
        }

    def auth_test(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """auth.test: the bot's own identity."""
        space = self._workspace
        return {
            "url": f"https://{space.team_domain}.slack.com/",
            "team": space.team_name,
            "user": space.bot_name,
            "team_id": space.team_id,
            "user_id": space.bot_user_id,
            "bot_id": space.bot_id,
            # Slack's reference lists app_id in auth.test's answer; HTTP mode checks it.
            "app_id": space.app_id,
            "is_enterprise_install": False,
        }

    def users_info(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """users.info: a person, or the bot user."""
        space = self._workspace
        user_id = str(args["user"])
        is_bot = user_id == space.bot_user_id
        if not is_bot and user_id not in space.users:
            raise SlackError("user_not_found")
        display = space.bot_name if is_bot else space.users[user_id]
        profile: dict[str, Any] = {
            "display_name": display,
            "display_name_normalized": display,
            "real_name": display,
            "real_name_normalized": display,
        }
        if is_bot:
            profile["bot_id"] = space.bot_id
        return {
            "user": {
                "id": user_id,
                "team_id": space.team_id,
                "name": display.lower().replace(" ", "."),
                "real_name": display,
                "deleted": False,
                "is_bot": is_bot,
                "is_app_user": False,
                "profile": profile,
            }
        }

    def usergroup_members(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """usergroups.users.list: the user ids in a user group."""
        members = self._workspace.usergroups.get(str(args["usergroup"]))
        if members is None:
            raise SlackError("no_such_subteam")
        return {"users": list(members)}
