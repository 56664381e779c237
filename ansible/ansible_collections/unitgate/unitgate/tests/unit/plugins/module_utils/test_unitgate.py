# -*- coding: utf-8 -*-
# Copyright: unitgate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

import json

import pytest

from ansible_collections.unitgate.unitgate.plugins.module_utils.unitgate import error_of, expected, plan, set_differences

RUNNING = {"instance": "a", "initialized": True, "enabled": True, "active_state": "active"}
STOPPED = {"instance": "a", "initialized": True, "enabled": False, "active_state": "inactive"}
# Running, but not enabled: drift `running-but-not-enabled`.
UNENABLED = {"instance": "a", "initialized": True, "enabled": False, "active_state": "active"}
# A unit whose state directory a crashed delete removed.
ORPHAN = {"instance": "a", "initialized": False, "enabled": True, "active_state": "active"}


@pytest.mark.parametrize(
    "current, state, steps",
    [
        (None, "present", ["init"]),
        (STOPPED, "present", []),
        (None, "started", ["init", "start"]),
        (STOPPED, "started", ["start"]),
        (RUNNING, "started", []),
        (UNENABLED, "started", ["start"]),
        (RUNNING, "stopped", ["stop"]),
        (UNENABLED, "stopped", ["stop"]),
        (STOPPED, "stopped", []),
        (None, "stopped", ["init"]),
        (RUNNING, "restarted", ["restart"]),
        (None, "restarted", ["init", "restart"]),
        (RUNNING, "absent", ["delete"]),
        (ORPHAN, "absent", ["delete"]),
        (None, "absent", []),
    ],
)
def test_only_what_differs_is_planned(current, state, steps):
    assert plan(current, state) == steps


def test_an_unknown_state_is_refused():
    with pytest.raises(ValueError):
        plan(None, "running")


def test_check_mode_predicts_the_state_after():
    assert expected(None, ["init", "start"]) == {"initialized": True, "enabled": True, "active_state": "active"}
    assert expected(RUNNING, ["stop"]) == {"initialized": True, "enabled": False, "active_state": "inactive"}
    assert expected(RUNNING, ["delete"]) == {"initialized": False}


def test_a_refusal_keeps_unitgates_words_and_code():
    doc = {"error": {"kind": "bad-name", "message": "invalid instance name 'A B'", "hint": "names match ..."}}
    e = error_of(65, json.dumps(doc), "unitgate: invalid instance name")
    assert (e.rc, e.kind, e.message, e.hint) == (65, "bad-name", "invalid instance name 'A B'", "names match ...")
    assert e.as_fail_args(["unitgate"])["msg"] == "invalid instance name 'A B' (names match ...)"


def test_a_bulk_failure_names_the_instances_that_failed():
    doc = {
        "results": [
            {"instance": "a", "ok": True},
            {"instance": "b", "ok": False, "error": {"kind": "no-such-instance", "message": "no such instance 'b'"}},
        ]
    }
    e = error_of(66, json.dumps(doc), "")
    assert e.kind == "no-such-instance"
    assert e.message == "b: no such instance 'b'"
    assert len(e.results) == 2


def test_without_a_document_the_last_line_of_stderr_says_why():
    e = error_of(1, "", "sudo: a password is required\n")
    assert (e.rc, e.message) == (1, "sudo: a password is required")
    assert error_of(9, "not json", "").message == "unitgate exited with 9"


def test_an_existing_instance_with_the_values_asked_for_differs_in_nothing():
    doc = {"instance": "a", "port": 27050, "set": {"MAP": "c1m1"}, "outcome": "exists"}
    assert set_differences(doc, {"PORT": 27050, "MAP": "c1m1"}) == []


def test_each_value_an_existing_instance_has_otherwise_is_named():
    doc = {"instance": "a", "port": 27015, "set": {"MAP": "c1m1"}, "outcome": "exists"}
    assert set_differences(doc, {"PORT": "27050", "MAP": "c2m2", "NEW": "x"}) == [
        "MAP='c1m1' (not 'c2m2')",
        "NEW=nothing (not 'x')",
        "PORT='27015' (not '27050')",
    ]


def test_port_is_an_ordinary_value_where_the_app_allocates_none():
    doc = {"instance": "a", "port": None, "set": {"PORT": "80"}, "outcome": "exists"}
    assert set_differences(doc, {"PORT": 80}) == []


def test_a_document_without_the_values_cannot_be_compared():
    assert set_differences({"instance": "a", "port": None, "outcome": "exists"}, {"MAP": "x"}) is None
