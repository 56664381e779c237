# ansible-test's pip bootstrap, made from the standard library's ensurepip
# (its own comes from a host this network does not reach).
import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
# ensurepip hides pip's configuration from itself; the install that follows
# needs it (the registry's certificate).
os.environ.pop("PIP_CONFIG_FILE", None)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
