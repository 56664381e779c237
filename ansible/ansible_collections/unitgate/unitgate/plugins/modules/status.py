#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unitgate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: status
short_description: Read a unitgate app's instances and their drift
description:
  - Returns every instance of an app as C(unitgate status --json) reports
    it, and those that drifted (running but not enabled, enabled but not
    running, a unit without its state, ...), for C(when:) conditions and
    fleet reports. Changes nothing.
version_added: "0.1.0"
author: unitgate contributors (!UNKNOWN)
extends_documentation_fragment:
  - unitgate.unitgate.cli
notes:
  - Supports check mode (it reads only).
"""

EXAMPLES = r"""
- name: Read the servers of every host
  unitgate.unitgate.status:
    app: left4me-server
  register: servers

- name: Say which drifted
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: {{ servers.drifted | map(attribute='instance') | list }}"
  when: servers.drifted | length > 0
"""

RETURN = r"""
instances:
  description: Every instance's status element (C(instance), C(initialized), C(enabled), C(active_state), C(drift), ...).
  returned: always
  type: list
  elements: dict
drifted:
  description: The instances whose C(drift) is not null.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.unitgate.unitgate.plugins.module_utils.unitgate import CLI_ARGUMENTS, Cli, UnitgateError


def main():
    module = AnsibleModule(
        argument_spec=dict(CLI_ARGUMENTS),
        supports_check_mode=True,
    )
    cli = Cli(module)
    try:
        instances = sorted(cli.statuses().values(), key=lambda i: i["instance"])
    except UnitgateError as e:
        module.fail_json(**e.as_fail_args(cli.command(["status"])))
    drifted = [i for i in instances if i.get("drift") is not None]
    module.exit_json(changed=False, instances=instances, drifted=drifted)


if __name__ == "__main__":
    main()
