"""The JupyterHub configuration that benchmarks/hub.py runs, and that INSTRUCTORS.md describes.

JupyterHub 6.1.1 (`pip install -c constraints.txt -e '.[hub]'`) with configurable-http-proxy
5.3.0 from npm, everything on 127.0.0.1. hub.py fills in the HUB_* variables below; to run the
file yourself, set them and start `jupyterhub -f benchmarks/jupyterhub_config.py`.

For a real workshop keep the `Spawner.environment` block as it is and change three things:
  - the authenticator: `dummy` lets anyone in with the shared password (fine on loopback only);
    use your institution's (OAuth, LDAP, `nativeauthenticator`) instead;
  - the spawner: `simple` (SimpleLocalProcessSpawner) runs every learner as the hub's own user,
    with a home folder each but no isolation at all; use `jupyterhub.spawner.LocalProcessSpawner`
    with system users, DockerSpawner or KubeSpawner (they read the same `Spawner.*` settings);
  - the addresses: `JupyterHub.bind_url` on a public address behind HTTPS.
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 -- JupyterHub defines get_config() when it loads this file

work = Path(os.environ["HUB_WORK"])  # a scratch folder: the hub's state and the learners' homes
venv_bin = Path(sys.executable).parent  # the course's .venv: jupyterhub-singleuser and the kernel

# --- the hub and its proxy: loopback only --------------------------------------------------------
c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['HUB_PORT']}"  # what browsers open
c.JupyterHub.hub_ip = "127.0.0.1"  # the hub's own API, for the proxy and the learners' servers
c.JupyterHub.hub_port = int(os.environ["HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['HUB_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["HUB_PROXY"]]  # node_modules/.bin/configurable-http-proxy
c.ConfigurableHTTPProxy.auth_token = os.environ["HUB_PROXY_TOKEN"]
c.JupyterHub.db_url = f"sqlite:///{work / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(work / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(work / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub (SIGINT) stops every learner's server

# --- who may log in: a test authenticator, one shared password -----------------------------------
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["HUB_PASSWORD"]
c.Authenticator.allow_all = True  # JupyterHub 5+ lets nobody in unless told

# --- each learner's server: a local process with a home of its own -------------------------------
c.JupyterHub.spawner_class = "simple"  # SimpleLocalProcessSpawner: no system users needed
c.SimpleLocalProcessSpawner.home_dir_template = str(work / "homes" / "{username}")
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [str(venv_bin / "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []  # Jupyter refuses root otherwise
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
# A loaded machine starts servers slowly: 30 at once on 2 cores took tens of seconds each.
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
c.JupyterHub.concurrent_spawn_limit = 0  # no limit: the benchmark starts them all at once

# --- the course's environment (INSTRUCTORS.md, "The spawner environment") ------------------------
# The hub sets JUPYTERHUB_USER itself, and the course names each learner's databases after it.
# PYTHONPATH makes `import course` find the learner's own copy, which nbgitpuller put in
# ~/async-databases (without it, the kernel imports whatever `course` the image installed).
# JupyterHub does not expand "{username}" in these values: a value that differs per learner is
# a function of the spawner (KubeSpawner's fixed /home/jovyan paths need none).


def in_home(*parts: str):  # a value for Spawner.environment
    return lambda spawner: str(Path(spawner.home_dir, *parts))  # SimpleLocalProcessSpawner's home


c.Spawner.environment = {
    "DATABASE_URL": os.environ["HUB_DATABASE_URL"],  # the `course` role: LOGIN CREATEDB, no more
    "PYTHONPATH": in_home("async-databases"),
    "COURSE_HOME": in_home(".async-databases"),  # progress, backups and SQLite copies
}

# --- the driver (benchmarks/hub.py) may list, start and stop servers through the REST API --------
c.JupyterHub.services = [{"name": "workshop-driver", "api_token": os.environ["HUB_API_TOKEN"]}]
c.JupyterHub.load_roles = [{
    "name": "workshop-driver",
    "scopes": ["list:users", "read:users", "admin:servers"],
    "services": ["workshop-driver"],
}]
