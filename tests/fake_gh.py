"""A stand-in for the `gh` command line, enough for the action's scripts (`gh api` only).

State lives in the JSON file named by FAKE_GH_STATE: comments by issue number (stamped
with the state's `now`), issues, the pull requests of a commit, open pull requests by
head, the head commit of a pull request (`pull_heads`), and a log of every call. GET
answers are filtered through the real `jq` as `gh api --jq` does; writes change the
state as GitHub would.
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
    method, path, jq, fields = "GET", "", None, {}
    args = iter(argv[1:])
    for arg in args:
        if arg == "--method":
            method = next(args)
        elif arg == "--jq":
            jq = next(args)
        elif arg in ("-F", "-f"):
            name, _, value = next(args).partition("=")
            if arg == "-F" and value.startswith("@"):
                value = Path(value[1:]).read_text("utf-8")
            fields[name] = value
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


def _answer(state: dict[str, Any], method: str, path: str, fields: dict[str, str]) -> Any:
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
