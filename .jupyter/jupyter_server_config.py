# The course's JupyterLab server settings beside jupyter_server_config.json (`make lab` puts this
# folder on JUPYTER_CONFIG_PATH). Kernels talk to the server over local sockets (IPC) instead of
# TCP ports on loopback: nothing else on the machine can connect to them, and ipykernel no longer
# warns "Kernel is running over TCP without encryption" in the terminal at every kernel start.
# Windows has no IPC sockets for ZeroMQ, so kernels keep TCP there.
import os

c = get_config()  # noqa: F821 -- provided by Jupyter when it loads this file
if os.name != "nt":
    c.KernelManager.transport = "ipc"
