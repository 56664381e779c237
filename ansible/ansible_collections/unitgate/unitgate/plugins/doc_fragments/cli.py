# -*- coding: utf-8 -*-
# Copyright: unitgate contributors
# SPDX-License-Identifier: MIT OR Apache-2.0

from __future__ import annotations


class ModuleDocFragment(object):
    """The options every module of the collection has: how it runs unitgate."""

    DOCUMENTATION = r"""
options:
  app:
    description: The app, as its config is named in C(/etc/unitgate/apps/).
    type: str
    required: true
  wait:
    description:
      - Seconds to wait for another command's lock, or for the system bus
        when it is not up yet, before failing (C(--wait)).
    type: int
    default: 30
  executable:
    description: The unitgate command.
    type: path
    default: unitgate
"""
