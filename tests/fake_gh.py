"""A stand-in for the `gh` command line, enough for the action's scripts (`gh api` only).

State lives in the JSON file named by FAKE_GH_STATE: comments by issue number (stamped
with the state's `now`), issues, the pull requests of a commit, open pull requests by
head, the head commit of a pull request (`pull_heads`), and a log of every call. GET
answers are filtered through the real `jq` as `gh api --jq` does; writes change the
state as GitHub would.

As GitHub's issues API does, the issue listing holds pull requests too: an item of
`issues` with a `pull_request` key is one, and the issue endpoints change it as they
would an issue. Like gh, `-F` reads `@FILE` byte for byte and turns `true`, `false`,
`null` and integers into JSON values (text a script must pass with `-f`); without
GH_TOKEN every call fails, and `down` in the state fails every call as a server error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

BOT = {"login": "github-actions[bot]"}


def main(argv: list[str]) -> int:
    state_path = Path(os.environ["FAKE_GH_STATE"])
    state: dict[str, Any] = json.loads(state_path.read_text("utf-8"))
    if argv[:1] != ["api"]:
        print(f"fake gh: unsupported {argv[:1]}", file=sys.stderr)
        return 2
    if not os.environ.get("GH_TOKEN"):
        print("gh: set the GH_TOKEN environment variable", file=sys.stderr)
        return 4
    method, path, jq = "GET", "", None
    fields: dict[str, Any] = {}
    args = iter(argv[1:])
    for arg in args:
        if arg == "--method":
            method = next(args)
        elif arg == "--jq":
            jq = next(args)
        elif arg in ("-F", "-f"):
            name, _, value = next(args).partition("=")
            fields[name] = _typed(value) if arg == "-F" else value
        elif arg == "--paginate":
            continue
        elif arg.startswith("-") or path:
            # A value split into words, or read as a flag: the script let text loose.
            print(f"fake gh: unexpected argument {arg!r}", file=sys.stderr)
            return 2
        else:
            path = arg
    state["calls"].append({"method": method, "path": path, "fields": fields})
    try:
        if state.get("down"):
            print("HTTP 502: Bad Gateway", file=sys.stderr)
            return 1
        if method != "GET" and state.get("read_only"):
            print("HTTP 403: Resource not accessible by integration", file=sys.stderr)
            return 1
        answer = _answer(state, method, path.split("?")[0], fields)
    finally:
        state_path.write_text(json.dumps(state), encoding="utf-8")
    text = json.dumps(answer)
    if jq is not None:
        text = subprocess.run(
            ["jq", "-r", jq], input=text, capture_output=True, text=True, check=True
        ).stdout
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _typed(value: str) -> Any:
    """A `-F` value as gh sends it: a file's bytes, or a literal turned into its JSON type."""
    if value.startswith("@"):
        # Bytes, not text mode: a CR LF in a body must arrive as it is in the file.
        return Path(value[1:]).read_bytes().decode("utf-8")
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    return {"true": True, "false": False, "null": None}.get(value, value)


def _answer(state: dict[str, Any], method: str, path: str, fields: dict[str, Any]) -> Any:
    comments = state.setdefault("comments", {})
    if match := re.fullmatch(r"repos/[^/]+/[^/]+/issues/(\d+)/comments", path):
        thread = comments.setdefault(match[1], [])
        if method == "GET":
            return thread
        state["next_id"] += 1
        thread.append({"id": state["next_id"], "user": BOT, "body": fields["body"]})
        thread[-1]["updated_at"] = state.get("now", "2026-11-30T00:00:00Z")
        return thread[-1]
    if match := re.fullmatch(r"repos/[^/]+/[^/]+/issues/comments/(\d+)", path):
        for comment in (c for thread in comments.values() for c in thread):
            if comment["id"] == int(match[1]):
                comment["body"] = fields["body"]
                comment["updated_at"] = state.get("now", "2026-11-30T00:00:00Z")
                return comment
    if re.fullmatch(r"repos/[^/]+/[^/]+/issues", path):
        if method == "GET":
            return [i for i in state["issues"] if i["state"] == "open"]
        state["next_id"] += 1
        issue = {"number": state["next_id"], "user": BOT, "state": "open", **fields}
        state["issues"].append(issue)
        return issue
    if match := re.fullmatch(r"repos/[^/]+/[^/]+/issues/(\d+)", path):
        for issue in state["issues"]:
            if issue["number"] == int(match[1]):
                issue.update(fields)
                return issue
    match = re.fullmatch(r"repos/[^/]+/[^/]+/pulls/(\d+)", path)
    if match and method == "GET" and match[1] in state.get("pull_heads", {}):
        return {"number": int(match[1]), "head": {"sha": state["pull_heads"][match[1]]}}
    if re.fullmatch(r"repos/[^/]+/[^/]+/commits/\w+/pulls", path):
        return state["pulls"]
    if re.fullmatch(r"repos/[^/]+/[^/]+/pulls", path) and method == "GET":
        # Open pull requests, filtered by `head=OWNER:BRANCH` as GitHub does.
        return [p for p in state.get("open_pulls", []) if p["head"]["label"] == fields["head"]]
    print(f"fake gh: no such endpoint {method} {path}", file=sys.stderr)
    raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
