#!/usr/bin/env python3
"""A web app's view of unitgate.

The way a web app (or a deploy script) drives unitgate: one `unitgate --json`
process per action, started with an argument list (never a shell), its one
JSON document parsed and checked against docs/schema/unitgate.schema.json,
its exit code read. Run inside a test machine as the app's service account
by tests/tests/cli_json_contract.rs:

    webapp.py --app demo [--expect NAME=OUTCOME]...

checks, and prints one line per failed check (exit 1 if any):

- the lifecycle of a healthy instance (init, start, status, restart,
  reconfigure, reset, stop, delete; then init --exist-ok and
  delete --missing-ok converge), every document valid;
- every error path a program meets, each a valid error document with the
  documented kind and exit code;
- every command with its stdout a pipe nobody reads any more: exit 0, no
  panic;
- `start NAME` of each --expect instance: OUTCOME is `started` or the
  error kind it must fail with (its systemd report filled in).
"""

import argparse
import fcntl
import json
import os
import subprocess
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = json.load(open(os.path.join(HERE, "..", "..", "docs", "schema", "unitgate.schema.json")))
FAILURES = []


def check(ok, what):
    if not ok:
        FAILURES.append(what)
    return ok


def valid(doc, name, what):
    try:
        jsonschema.validate(doc, {"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})
        return True
    except jsonschema.ValidationError as e:
        return check(False, f"{what}: not a valid {name}: {e.message} in {json.dumps(doc)[:400]}")


class Unitgate:
    def __init__(self, app):
        self.app = app

    def run(self, *args, app=True):
        argv = ["unitgate"] + (["--app", self.app] if app else []) + ["--json", *args]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        try:
            doc = json.loads(p.stdout)
        except json.JSONDecodeError:
            doc = None
        return p.returncode, doc, p.stdout, p.stderr

    def expect_doc(self, schema, *args):
        """A command that must succeed with one document of `schema`."""
        code, doc, out, err = self.run(*args)
        what = f"unitgate {' '.join(args)}"
        if check(code == 0 and doc is not None, f"{what}: exit {code}, stdout {out!r}, stderr {err!r}"):
            valid(doc, schema, what)
        return doc

    def expect_error(self, kind, code, *args, app=True):
        """A command that must fail with one error document."""
        got, doc, out, err = self.run(*args, app=app)
        what = f"unitgate {' '.join(args)}"
        if not check(doc is not None, f"{what}: no single JSON document on stdout: {out!r}"):
            return None
        if valid(doc, "error_document", what):
            check(doc["error"]["kind"] == kind, f"{what}: kind {doc['error']['kind']}, wanted {kind}")
            check(doc["error"]["code"] == code == got, f"{what}: exit {got}, error.code {doc['error']['code']}, wanted {code}")
            check(err.startswith("unitgate: "), f"{what}: no one-line message on stderr: {err!r}")
        return doc

    def expect_result(self, outcome, code, *args):
        """A bulk command on one instance: its one result."""
        got, doc, out, err = self.run(*args)
        what = f"unitgate {' '.join(args)}"
        if not check(doc is not None, f"{what}: no single JSON document on stdout: {out!r} {err!r}"):
            return None
        if not valid(doc, "results_document", what):
            return None
        r = doc["results"][0]
        if outcome in SCHEMA["$defs"]["error_kind"]["enum"]:
            check(not r["ok"] and r["error"]["kind"] == outcome,
                  f"{what}: wanted a {outcome} failure, got {json.dumps(r)[:600]}")
        else:
            check(r["ok"] and r["outcome"] == outcome, f"{what}: wanted {outcome}, got {json.dumps(r)[:600]}")
        check(got == code, f"{what}: exit {got}, wanted {code} ({err.strip()})")
        return r


def lifecycle(ug):
    init = ug.expect_doc("init_document", "init", "web1", "--set", "MAP=c1m1")
    check(init is None or init["set"] == {"MAP": "c1m1"}, f"init's own --set values: {init}")
    ug.expect_doc("results_document", "start", "web1")
    status = ug.expect_doc("status_document", "status", "web1")
    if status:
        st = status["instances"][0]
        check(st["active_state"] == "active" and st["enabled"] and st["drift"] is None,
              f"status web1 after start: {st}")
    ug.expect_result("restarted", 0, "restart", "web1")
    ug.expect_result("unchanged", 0, "reconfigure", "web1")
    ug.expect_result("stopped", 0, "stop", "web1")
    ug.expect_result("already stopped", 0, "stop", "web1")
    ug.expect_result("reset", 0, "reset", "web1")
    init = ug.expect_doc("init_document", "init", "web1", "--exist-ok", "--set", "MAP=c2m2")
    check(init is None or (init["outcome"] == "exists" and init["set"] == {"MAP": "c1m1"}),
          f"init --exist-ok of an existing instance shows the values it keeps: {init}")
    ug.expect_result("deleted", 0, "delete", "web1")
    ug.expect_result("already deleted", 0, "delete", "web1", "--missing-ok")
    ug.expect_doc("status_document", "status")
    ug.expect_doc("install_document", "install")


def errors(ug, state_dir):
    ug.expect_doc("init_document", "init", "err1")
    ug.expect_error("bad-name", 65, "init", "bad.name")
    ug.expect_error("bad-name", 65, "start", "ok", "../x")
    ug.expect_error("exists", 73, "init", "err1")
    ug.expect_error("usage", 64, "init", "err2", "--set", "NOEQUALS")
    ug.expect_error("usage", 64, "frobnicate")
    ug.expect_error("config", 78, "--app", "nosuchapp", "status", app=False)
    ug.expect_error("bad-name", 65, "--app", "Bad/App", "status", app=False)
    for verb in ["start", "stop", "restart", "reset", "delete", "reconfigure"]:
        ug.expect_result("no-such-instance", 66, verb, "nope")
    ug.expect_error("bad-name", 65, "logs", "bad.name")
    ug.expect_error("bad-name", 65, "reconfigure", "bad.name")
    ug.expect_error("usage", 64, "watch", "--interval", "0")
    ug.expect_error("usage", 64, "start", "--settle", "9999", "err1")
    ug.expect_error("new-app", 64, "new-app", "Bad!", "--exec", "/bin/true", "--dir", "/tmp")
    # `status` of an instance that does not exist: the status document shows
    # it, the exit code says so, and no second document follows.
    code, doc, out, err = ug.run("status", "nope")
    if check(doc is not None and code == 66, f"status nope: exit {code}, stdout {out!r}"):
        valid(doc, "status_document", "status nope")
    # Busy: another command holds the instance's lock (as unitgate would).
    with open(os.path.join(state_dir, ".locks", "instance.err1.lock"), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        ug.expect_error("busy", 75, "--wait", "1", "start", "err1")
        ug.expect_error("busy", 75, "--wait", "0", "init", "err1")


def closed_pipes(ug):
    """Each command with stdout a pipe whose reader is gone."""
    commands = [
        ["status"], ["--json", "status"], ["completions", "bash"], ["man"], ["--help"],
        ["init", "pipe1"], ["--json", "start", "pipe1"], ["stop", "pipe1"],
        ["reconfigure"], ["delete", "pipe1"],
        ["new-app", "pipeapp", "--exec", "/bin/true", "--dir", "/tmp/pipe-new-app"],
    ]
    for args in commands:
        r, w = os.pipe()
        os.close(r)
        p = subprocess.run(["unitgate", "--app", ug.app, *args], stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        os.close(w)
        what = f"unitgate {' '.join(args)} > closed pipe"
        check(p.returncode == 0, f"{what}: exit {p.returncode}: {p.stderr.strip()}")
        check("panicked" not in p.stderr and "RUST_BACKTRACE" not in p.stderr, f"{what}: {p.stderr}")


def expectations(ug, expected):
    for item in expected:
        name, outcome = item.split("=", 1)
        code = 0 if outcome == "started" else 4
        r = ug.expect_result(outcome, code, "start", name)
        if r and not r["ok"]:
            unit = r["error"].get("unit")
            check(unit is not None and unit["active_state"], f"start {name}: no systemd report: {r}")


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--app", required=True)
    args.add_argument("--state-dir", required=True)
    args.add_argument("--expect", action="append", default=[])
    opts = args.parse_args()
    ug = Unitgate(opts.app)
    lifecycle(ug)
    errors(ug, opts.state_dir)
    closed_pipes(ug)
    expectations(ug, opts.expect)
    for f in FAILURES:
        print(f"FAIL {f}")
    print(f"{len(FAILURES)} failed checks")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
