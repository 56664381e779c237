#!/bin/bash
# The Ansible collection's own checks: ansible-test's unit tests and sanity
# tests, with ansible-core from PyPI (venv.sh).
#
#   bash tests/ansible/check.sh
#
# ansible-test makes a virtual environment per sanity test and bootstraps
# pip in each with a script it downloads from ci-files.testing.ansible.com,
# which this network does not reach: get-pip.py beside this script does the
# same from the standard library's ensurepip and PyPI, and is put where
# ansible-test looks for its cached copy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
collection=$here/../../ansible/ansible_collections/unitgate/unitgate
venv=$(bash "$here/venv.sh")
# The pip ansible-core 2.19's ansible-test bootstraps in each environment.
pip_version=24.2
mkdir -p "$HOME/.ansible/test/cache"
install -m 0644 "$here/get-pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
cd "$collection"
export PATH=$venv/bin:$PATH
ansible-test units --python 3.11 --local
ansible-test sanity --python 3.11 --local
# The documented example playbooks (docs/fleet.md) parse, with the
# collection as the checkout has it.
cd "$here/../../ansible/examples"
for book in *.yml; do
    ANSIBLE_COLLECTIONS_PATH=$here/../../ansible ansible-playbook -i inventory.ini --syntax-check "$book"
done
