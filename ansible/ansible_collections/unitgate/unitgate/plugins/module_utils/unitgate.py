# -*- coding: utf-8 -*-
# Copyright: unitgate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Driving the unitgate CLI from a module: one call, its JSON, its errors.

The modules never read an app's files or call systemd themselves: unitgate
is the only path, as the account (or an operator) that runs the play, so a
module can do nothing its user could not do at a shell. Everything here but
`Cli.call` is pure, so that the plan a module makes can be tested without a
host.
"""

from __future__ import annotations

import json

# The options every module has (their documentation: doc_fragments/cli.py).
CLI_ARGUMENTS = dict(
    app=dict(type="str", required=True),
    wait=dict(type="int", default=30),
    executable=dict(type="path", default="unitgate"),
)

# The states `instance` knows, and what each asks of one instance.
STATES = ("present", "started", "stopped", "restarted", "absent")


class UnitgateError(Exception):
    """A unitgate command that failed: its exit code and its own words."""

    def __init__(self, rc, message, hint=None, kind=None, results=None):
        super().__init__(message)
        self.rc = rc
        self.message = message
        self.hint = hint
        self.kind = kind
        self.results = results or []

    def as_fail_args(self, cmd):
        """The arguments of `fail_json` for this failure."""
        msg = self.message if not self.hint else "%s (%s)" % (self.message, self.hint)
        return {
            "msg": msg,
            "rc": self.rc,
            "kind": self.kind,
            "cmd": cmd,
            "results": self.results,
        }


def error_of(rc, stdout, stderr):
    """The failure a command's exit code, stdout and stderr describe.

    Under --json a failed command prints one document: `{"error": ...}`, or
    a `results` document whose failed entries say why; anything else (sudo
    refusing before unitgate ran) is read from stderr's last line.
    """
    doc = parse(stdout)
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        return UnitgateError(rc, err.get("message", "unitgate failed"), err.get("hint"), err.get("kind"))
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):
        failed = [r for r in doc["results"] if isinstance(r, dict) and not r.get("ok", False)]
        if failed:
            first = failed[0].get("error") or {}
            names = ", ".join(str(r.get("instance")) for r in failed)
            return UnitgateError(
                rc,
                "%s: %s" % (names, first.get("message", "failed")),
                first.get("hint"),
                first.get("kind"),
                doc["results"],
            )
    lines = [line for line in (stderr or "").splitlines() if line.strip()]
    return UnitgateError(rc, lines[-1] if lines else "unitgate exited with %d" % rc)


def parse(stdout):
    """The JSON document on stdout, or None."""
    try:
        return json.loads(stdout) if stdout and stdout.strip() else None
    except ValueError:
        return None


def plan(current, state):
    """The unitgate commands that bring one instance to `state`.

    `current` is the instance's status element (`status --json`), or None
    when it is not initialized. The order is the order to run them in.
    """
    if state not in STATES:
        raise ValueError("unknown state %r" % (state,))
    initialized = current is not None and current.get("initialized", False)
    if state == "absent":
        return ["delete"] if initialized or _has_unit(current) else []
    steps = [] if initialized else ["init"]
    running = initialized and current.get("active_state") == "active"
    enabled = initialized and current.get("enabled", False)
    if state == "started" and not (running and enabled):
        steps.append("start")
    elif state == "stopped" and (running or enabled):
        steps.append("stop")
    elif state == "restarted":
        steps.append("restart")
    return steps


def _has_unit(current):
    """Whether a unit is left without its state (a crashed delete)."""
    return current is not None and (current.get("enabled") or current.get("active_state") not in (None, "inactive"))


def set_differences(doc, wanted):
    """The settings in `wanted` that an existing instance has otherwise.

    `doc` is the instance's `init --exist-ok --json` document: its own
    `--set` values (`set`) and its port (`port`, which is PORT where the app
    allocates ports). None when the document does not say (an older
    unitgate).
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("set"), dict):
        return None
    port = doc.get("port")
    differing = []
    for key in sorted(wanted):
        value = "%s" % (wanted[key],)
        has = "%s" % (port,) if key == "PORT" and port is not None else doc["set"].get(key)
        if has != value:
            differing.append("%s=%s (not %r)" % (key, "nothing" if has is None else repr(has), value))
    return differing


def summary(current):
    """What `--diff` shows of one instance."""
    if current is None or not current.get("initialized", False):
        return {"initialized": False}
    return {
        "initialized": True,
        "enabled": bool(current.get("enabled", False)),
        "active_state": current.get("active_state"),
    }


def expected(current, steps):
    """The summary an instance will have once `steps` ran (check mode)."""
    if "delete" in steps:
        return {"initialized": False}
    after = summary(current)
    if "init" in steps:
        after = {"initialized": True, "enabled": False, "active_state": "inactive"}
    if "start" in steps or "restart" in steps:
        after.update(enabled=True, active_state="active")
    if "stop" in steps:
        after.update(enabled=False, active_state="inactive")
    return after


class Cli(object):
    """unitgate for one app, run through an AnsibleModule with CLI_ARGUMENTS."""

    def __init__(self, module):
        self.module = module
        self.executable = module.params["executable"]
        self.app = module.params["app"]
        self.wait = module.params["wait"]

    def command(self, args):
        return [self.executable, "--app", self.app, "--json", "--wait", str(self.wait)] + list(args)

    def call(self, args):
        """Runs unitgate with `args`; its JSON document, or UnitgateError."""
        cmd = self.command(args)
        rc, stdout, stderr = self.module.run_command(cmd, environ_update={"LC_ALL": "C"})
        if rc != 0:
            raise error_of(rc, stdout, stderr)
        return parse(stdout)

    def statuses(self):
        """Every instance's status element, by name."""
        doc = self.call(["status"]) or {}
        return {i["instance"]: i for i in doc.get("instances", []) if "instance" in i}
