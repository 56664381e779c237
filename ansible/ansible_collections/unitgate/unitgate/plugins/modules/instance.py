#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unitgate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: instance
short_description: Bring instances of a unitgate app to a state
description:
  - Creates, starts, stops, restarts or deletes instances of an app that
    unitgate drives, through the C(unitgate) command on the managed host.
  - It reads C(unitgate status --json) first and runs only the commands
    that change something, so it reports C(changed) only then.
  - Runs as the remote user, which must be the app's service account or
    an operator the app's C(install.conf) lists in C(operators=); no other
    privilege is needed on the host.
version_added: "0.1.0"
author: unitgate contributors (!UNKNOWN)
extends_documentation_fragment:
  - unitgate.unitgate.cli
options:
  names:
    description: Instance names (the app's C(instance_pattern) applies).
    type: list
    elements: str
    required: true
    aliases: [name]
  state:
    description:
      - C(present) an initialized instance, running or not.
      - C(started) initialized, enabled and running (back after a reboot).
      - C(stopped) initialized, disabled and stopped.
      - C(restarted) started anew, every run (always changed).
      - C(absent) deleted, its state directory with it.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  set:
    description:
      - Variables of a new instance's environment file (C(init --set)),
        for instance C(PORT) to ask for a given port.
      - An existing instance keeps the values it was made with; if one of
        them differs from what is asked here, the task fails, naming it
        (retire the instance with I(state=absent) and create it again).
      - The values are on the command line of C(unitgate init) on the
        host while it runs; keep secrets out of them.
    type: dict
    default: {}
  settle:
    description: Seconds a started instance must stay up (C(--settle)); the app's own when not given.
    type: int
notes:
  - Supports check mode and C(--diff).
  - A refusal fails the task with unitgate's own message, its exit code
    in C(rc) and its kind in C(kind) (for example C(no-such-instance),
    C(not-permitted), C(busy)).
"""

EXAMPLES = r"""
- name: Two game servers, running and back after a reboot
  unitgate.unitgate.instance:
    app: left4me-server
    names: [eu1, eu2]
    state: started

- name: A server on a given port
  unitgate.unitgate.instance:
    app: left4me-server
    name: us1
    set:
      PORT: "27020"

- name: Retire a server and its data
  unitgate.unitgate.instance:
    app: left4me-server
    name: eu2
    state: absent
"""

RETURN = r"""
instances:
  description: The instances' status elements after the run (C(unitgate status --json)); in check mode, as they were.
  returned: always
  type: list
  elements: dict
commands:
  description: The unitgate commands run (in check mode, those that would run), one list per command.
  returned: always
  type: list
  elements: list
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.unitgate.unitgate.plugins.module_utils.unitgate import (
    CLI_ARGUMENTS,
    STATES,
    Cli,
    UnitgateError,
    expected,
    plan,
    set_differences,
    summary,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            CLI_ARGUMENTS,
            names=dict(type="list", elements="str", required=True, aliases=["name"]),
            state=dict(type="str", choices=list(STATES), default="started"),
            set=dict(type="dict", default={}),
            settle=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    cli = Cli(module)
    names = list(dict.fromkeys(p["names"]))
    try:
        before = cli.statuses()
    except UnitgateError as e:
        module.fail_json(**e.as_fail_args(cli.command(["status"])))

    steps = {n: plan(before.get(n), p["state"]) for n in names}
    sets = ["--set=%s=%s" % (k, v) for k, v in sorted(p["set"].items())]
    # An existing instance keeps the values it was made with: one that has
    # others is not the instance asked for, and nothing here can change
    # that in place. `init --exist-ok` changes nothing on an existing one.
    if sets and p["state"] != "absent":
        for n in names:
            if "init" in steps[n] or n not in before:
                continue
            args = ["init", "--exist-ok", n] + sets
            try:
                differing = set_differences(cli.call(args), p["set"])
            except UnitgateError as e:
                module.fail_json(**e.as_fail_args(cli.command(args)))
            if differing is None:
                module.warn("unitgate did not say which --set values %s has: not compared" % n)
            elif differing:
                module.fail_json(
                    msg="%s exists with other settings: it keeps its own %s; to give it these, "
                    "retire it (state: absent) and create it again" % (n, ", ".join(differing)),
                    instance=n,
                    differing=differing,
                )
    commands = []
    for verb in ("init", "delete", "stop", "start", "restart"):
        chosen = [n for n in names if verb in steps[n]]
        if not chosen:
            continue
        if verb == "init":
            commands.extend([["init", n] + sets for n in chosen])
        else:
            settle = ["--settle", str(p["settle"])] if verb in ("start", "restart") and p["settle"] is not None else []
            commands.append([verb] + settle + chosen)

    diff = {
        "before": {n: summary(before.get(n)) for n in names},
        "after": {n: expected(before.get(n), steps[n]) for n in names},
    }
    changed = bool(commands)
    if module.check_mode or not changed:
        module.exit_json(changed=changed, diff=diff, commands=commands, instances=[before[n] for n in names if n in before])

    for args in commands:
        try:
            cli.call(args)
        except UnitgateError as e:
            module.fail_json(**e.as_fail_args(cli.command(args)))
    try:
        after = cli.statuses()
    except UnitgateError as e:
        module.fail_json(**e.as_fail_args(cli.command(["status"])))
    diff["after"] = {n: summary(after.get(n)) for n in names}
    module.exit_json(changed=True, diff=diff, commands=commands, instances=[after[n] for n in names if n in after])


if __name__ == "__main__":
    main()
