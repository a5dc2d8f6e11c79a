"""A real multi-engine Docker Swarm on this one machine, for the tests of the Swarm runtime (issue #12).

Each node ``n<k>`` of a :class:`SwarmCluster` is a host of its own, as far as Docker can tell:

* a network namespace ``<prefix>n<k>`` whose ``eth0`` is one end of a veth pair; the other end is a port
  of a Linux bridge ``br0`` in a "switch" namespace ``<prefix>sw``, which the root namespace joins through
  one more veth pair (``<prefix>gw``, ``10.213.<y>.1/24``: a /24 that nothing on the host routes yet;
  nodes ``.11``, ``.12``, ``.13``, default route via ``.1``).  Why not a bridge in the root namespace:
  there the frames bridged between the nodes pass the host's iptables (``bridge-nf-call-iptables=1`` is
  set globally by the host engine), whose ``FORWARD DROP`` policy is the host engine's: measured, with the
  bridge in the root namespace (even with its own ``nf_call_iptables 0``) the root namespace reached
  n1:2377 but n2 did not, and ``swarm join`` timed out.  The switch namespace has no rules, and the
  host's iptables stay untouched.
  The nodes' ``/etc/resolv.conf`` names the gateway, where nothing answers DNS: a registry lookup (which
  swarm tries before using a local image) fails at once instead of timing out.
* a ``dockerd`` with its own data root (``/var/lib/ragctl-swarm/<prefix>/n<k>/data``: the real disk, so
  overlay2 works), its own socket (``…/n<k>/docker.sock``), pid file, config file (an empty one: the
  host's ``/etc/docker/daemon.json`` is not read), log file, cgroup parent ``/<prefix>n<k>`` and
  ``--bip``; it starts its own containerd under its exec root.
* everything in a PID namespace, a mount namespace and a UTS namespace (hostname ``n<k>``):
  ``ip netns exec NS unshare --pid --fork --mount --propagation slave --mount-proc --uts sh -c …``; the
  shell mounts a private tmpfs on ``/run`` (the exec root ``/run/docker``, containerd's state and its
  shims' sockets in ``/run/containerd/s`` live there and vanish with the node, as ``/run`` does on a
  host that loses power), remounts the cgroup hierarchies (``ip netns exec`` mounts a fresh ``/sys``,
  which hides ``/sys/fs/cgroup``) and execs ``tini`` as the namespace's PID 1 with dockerd as its child.
  ``tini`` reaps the shims' orphans and forwards SIGTERM to dockerd.

Why a PID namespace: SIGKILL to a PID namespace's init makes the kernel SIGKILL every process in it,
nested namespaces included, so :meth:`SwarmCluster.kill_node` takes down that engine, its containerd,
the shims and every container at once, like a host losing power (the containers' processes sit in
nested PID namespaces created by runc, and die too; ``node_processes`` checks the host's process table).
The mount namespace keeps the engine's overlay and netns mounts out of the host's mount table: they go
when the node's last process does.  :meth:`SwarmCluster.start_node` starts the engine again on the same
data root; a worker rejoins the swarm by itself.

Everything this module creates carries the run's prefix ``rgs<pid % 10000>`` (interface names must fit
15 characters) and the run folder holds ``owner.pid``; :func:`cleanup_stale` removes only what carries
the ``rgs<digits>`` pattern and belongs to a process that is gone.  The host engine (the default socket)
is only read from (``docker save`` for :meth:`SwarmCluster.load_image`), never changed.

Limits of this kernel found while building it (``/proc/config.gz``): no ``CONFIG_IP_VS``, so the routing
mesh (ingress-published ports) and service VIPs do not work: use ``endpoint_mode: dnsrr`` and
``mode: host`` published ports (measured: a VIP answers "No route to host", an ingress port nothing);
no ``CONFIG_INET_ESP``, so ``--opt encrypted`` overlays carry nothing (dockerd: "Failed Adding rSA{…
Proto: esp …}: function not implemented"; HTTP over it times out).  :func:`kernel_features` says which
are present; the harness's routing-mesh and encrypted-overlay tests skip with that reason without them.

For tests: ``cluster.docker(node, *args)`` (the CLI against a node), ``cluster.env(node)`` (DOCKER_HOST for
the CLI, docker-py or a ``ragctl`` subprocess), ``node_ip``, ``label(node, k=v)``, ``load_image(tag)``
(one ``docker save`` from the host engine streamed into every node's ``docker load``), ``kill_node`` /
``stop_node`` / ``start_node``, ``wait_status(node, "Down")``, ``node_states``, ``node_processes``,
``node_memory``, ``timings``; :func:`run_leftovers` and :func:`host_engine_state` for leak checks.

Fixture: ``swarm_cluster`` (module scope, a started 3-node swarm).  Without root, ``ip``, ``dockerd``,
``unshare``, ``tini`` or VXLAN it skips with the reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.suite import skip_or_fail

RUN_ROOT = Path("/var/lib/ragctl-swarm")
NAME_RE = re.compile(r"^rgs\d{1,4}$")  # the prefix of every run; cleanup_stale touches nothing else
SUBNET_BASE = "10.213"  # the bridge between the namespaces: 10.213.<y>.0/24
ADDR_POOL = "10.214.0.0/16"  # the swarm's overlay networks (inside the nodes only)
HOST_DOCKER = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}


def _run(*args: str, check: bool = True, timeout: float = 60, env: dict | None = None,
         input: str | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and done.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}".strip())
    return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive: only its parent's wait() is missing
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def kernel_features() -> dict[str, bool]:
    """What this kernel offers a swarm: VXLAN (overlay networks), IPVS (routing mesh, VIPs), ESP (encryption)."""
    config = ""
    with contextlib.suppress(OSError):
        config = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()

    def has(option: str, module: str) -> bool:
        if Path(f"/sys/module/{module}").exists() or re.search(rf"^CONFIG_{option}=y", config, re.MULTILINE):
            return True
        if re.search(rf"^CONFIG_{option}=m", config, re.MULTILINE):  # a module: loadable if modprobe finds it
            return _run("modprobe", module, check=False).returncode == 0 if shutil.which("modprobe") else False
        return not config and Path(f"/lib/modules/{os.uname().release}").exists()  # no config to read: hope

    return {"vxlan": has("VXLAN", "vxlan"), "ipvs": Path("/proc/net/ip_vs").exists() or has("IP_VS", "ip_vs"),
            "esp": has("INET_ESP", "esp4")}


def unavailable_reason() -> str | None:
    """Why this machine cannot run a cluster, or None."""
    if os.geteuid() != 0:
        return "the Swarm cluster harness needs root (network namespaces, bridges, dockerd)"
    for tool in ("ip", "dockerd", "docker", "unshare", "findmnt"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (scripts/setup-test-host.sh installs the harness's packages)"
    if _tini() is None:
        return "tini is not installed (it comes with docker.io as docker-init; apt-get install tini)"
    if not kernel_features()["vxlan"]:
        return "this kernel has no VXLAN (CONFIG_VXLAN): overlay networks between the nodes cannot work"
    return None


def _tini() -> str | None:
    for name in ("tini-static", "docker-init", "tini"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Node:
    name: str  # n1, n2, …: the hostname inside the swarm
    index: int
    ip: str
    netns: str  # <prefix>n<k>
    veth: str  # the host side of the veth pair
    dir: Path
    launcher: subprocess.Popen | None = None
    init_pid: int | None = None  # the host pid of the node's PID-namespace init (tini)
    node_id: str | None = None  # its swarm node id

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def log(self) -> Path:
        return self.dir / "dockerd.log"


@dataclass
class SwarmCluster:
    """N Docker engines in network namespaces, joined into one swarm: ``with SwarmCluster() as c: …``."""

    nodes_wanted: int = 3
    #: False: the engines start outside any swarm (the test runs ``docker swarm init`` / ``join`` itself).
    swarm: bool = True
    prefix: str = ""
    root: Path = RUN_ROOT
    nodes: dict[str, Node] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _torn_down: bool = False

    def __post_init__(self):
        if not self.prefix:
            self.prefix = _free_prefix(self.root)
        if not NAME_RE.match(self.prefix):
            raise ValueError(f"prefix {self.prefix!r} must match {NAME_RE.pattern}")
        _IN_USE.add(self.prefix)
        self.dir = self.root / self.prefix
        self.switch = f"{self.prefix}sw"  # the network namespace holding the bridge br0
        self.uplink = f"{self.prefix}gw"  # the root namespace's veth into it
        self.subnet = _free_subnet(int(self.prefix[3:]))
        self.gateway = str(self.subnet.network_address + 1)
        for k in range(1, self.nodes_wanted + 1):
            name = f"n{k}"
            self.nodes[name] = Node(name, k, str(self.subnet.network_address + 10 + k), f"{self.prefix}{name}",
                                    f"{self.prefix}{name}h", self.dir / name)

    # -- life cycle ---------------------------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def start(self) -> None:
        """Network, engines, swarm: everything, with the times in ``self.timings``."""
        atexit.register(self.teardown)
        cleanup_stale()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        self._network()
        began = time.monotonic()
        for node in self.nodes.values():
            self._launch(node)
        for node in self.nodes.values():
            self._wait_engine(node)
        self.timings["engines_start_s"] = time.monotonic() - began
        if self.swarm:
            self.init_swarm()

    def _network(self) -> None:
        # The bridge lives in a "switch" namespace of its own, not in the root one: the host engine's
        # FORWARD DROP policy would drop the frames bridged between the nodes there (br_netfilter's
        # global bridge-nf-call-iptables=1 wins over the bridge's own nf_call_iptables 0), and changing
        # the host's iptables is not ours to do.  The root namespace reaches the nodes through one more
        # veth pair, <prefix>gw (the gateway address) <-> the switch's bridge.
        sw = self.switch
        _run("ip", "netns", "add", sw)
        _run("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", sw, "link", "set", "br0", "up")
        _run("ip", "-n", sw, "link", "set", "lo", "up")
        _run("ip", "link", "add", self.uplink, "type", "veth", "peer", "name", "up0", "netns", sw)
        _run("ip", "-n", sw, "link", "set", "up0", "master", "br0", "up")
        _run("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.uplink)
        _run("ip", "link", "set", self.uplink, "up")
        for node in self.nodes.values():
            _run("ip", "netns", "add", node.netns)
            _run("ip", "-n", sw, "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns",
                 node.netns)
            _run("ip", "-n", sw, "link", "set", node.veth, "master", "br0", "up")
            _run("ip", "-n", node.netns, "addr", "add", f"{node.ip}/{self.subnet.prefixlen}", "dev", "eth0")
            _run("ip", "-n", node.netns, "link", "set", "eth0", "up")
            _run("ip", "-n", node.netns, "link", "set", "lo", "up")
            _run("ip", "-n", node.netns, "route", "add", "default", "via", self.gateway)

    def _launch(self, node: Node) -> None:
        data = node.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = node.dir / "daemon.json"
        config.write_text("{}\n")
        node.socket.unlink(missing_ok=True)
        (node.dir / "docker.pid").unlink(missing_ok=True)  # a killed engine's: its pid means nothing now
        dockerd = [
            "dockerd", "--config-file", str(config), "--data-root", str(data), "--exec-root", "/run/docker",
            "--pidfile", str(node.dir / "docker.pid"), "-H", f"unix://{node.socket}",
            "--cgroup-parent", f"/{node.netns}", "--bip", f"172.31.{node.index}.1/24", "--iptables=true",
            "--log-level", "info",
        ]
        resolv = node.dir / "resolv.conf"
        resolv.write_text(f"nameserver {self.gateway}\noptions timeout:1 attempts:1\n")
        script = "\n".join([
            "set -e",
            f"hostname {node.name}",
            f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
            "mount -t tmpfs -o mode=755 tmpfs /run",  # exec root, containerd state, shim sockets: private
            *_cgroup_mounts(),
            f"exec {_tini()} -- {shlex.join(dockerd)}",
        ])
        log = open(node.log, "ab")  # noqa: SIM115 - the engine's log, kept open by the child only
        try:
            node.launcher = subprocess.Popen(
                ["ip", "netns", "exec", node.netns, "unshare", "--pid", "--fork", "--mount", "--propagation",
                 "slave", "--mount-proc", "--uts", "sh", "-c", script],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        node.init_pid = None

    def _wait_engine(self, node: Node, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.init_pid is None:
                node.init_pid = _child_of(node.launcher.pid)
            if node.launcher.poll() is not None:
                raise RuntimeError(f"dockerd of {node.name} exited ({node.launcher.returncode}):\n{self._tail(node)}")
            if self.docker(node.name, "version", "--format", "{{.Server.Version}}", check=False,
                           timeout=10).returncode == 0:
                node.init_pid = node.init_pid or _child_of(node.launcher.pid)
                return
            time.sleep(0.3)
        raise RuntimeError(f"dockerd of {node.name} did not answer in {timeout:.0f} s:\n{self._tail(node)}")

    def _tail(self, node: Node, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(node.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def init_swarm(self) -> None:
        manager, *workers = self.nodes.values()
        began = time.monotonic()
        self.docker(manager.name, "swarm", "init", "--advertise-addr", manager.ip, "--listen-addr",
                    f"{manager.ip}:2377", "--default-addr-pool", ADDR_POOL, timeout=60)
        self.timings["swarm_init_s"] = time.monotonic() - began
        token = self.docker(manager.name, "swarm", "join-token", "-q", "worker").stdout.strip()
        began = time.monotonic()
        for node in workers:
            self.docker(node.name, "swarm", "join", "--token", token, "--advertise-addr", node.ip,
                        "--listen-addr", f"{node.ip}:2377", f"{manager.ip}:2377", timeout=90)
        self.wait_ready(timeout=90)
        self.timings["swarm_join_s"] = time.monotonic() - began
        for node in self.nodes.values():
            node.node_id = self.docker(node.name, "info", "--format", "{{.Swarm.NodeID}}").stdout.strip()

    # -- helpers for tests --------------------------------------------------------------------------

    @property
    def manager(self) -> str:
        return next(iter(self.nodes))

    def node_ip(self, node: str) -> str:
        return self.nodes[node].ip

    def env(self, node: str) -> dict[str, str]:
        """Environment pointing the docker CLI, docker-py (``docker.from_env()``) or ``ragctl`` at a node."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
        env["DOCKER_HOST"] = f"unix://{self.nodes[node].socket}"
        return env

    def docker(self, node: str, *args: str, check: bool = True, timeout: float = 60,
               input: str | None = None) -> subprocess.CompletedProcess:
        """The docker CLI against one node's engine (text output)."""
        return _run("docker", *args, check=check, timeout=timeout, env=self.env(node), input=input)

    def node_states(self) -> dict[str, tuple[str, str]]:
        """hostname → (status, availability) as the manager sees it."""
        out = self.docker(self.manager, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}}",
                          timeout=30).stdout
        return {name: (status, avail) for name, status, avail in (line.split() for line in out.splitlines())}

    def wait_status(self, node: str, status: str, timeout: float = 60) -> float:
        """Wait until the manager shows ``node`` with ``status`` (Ready, Down); returns the seconds taken."""
        began = time.monotonic()
        seen = None
        while time.monotonic() - began < timeout:
            seen = self.node_states().get(node, ("absent", ""))[0]
            if seen == status:
                return time.monotonic() - began
            time.sleep(0.5)
        raise TimeoutError(f"{node} is {seen}, not {status}, after {timeout:.0f} s")

    def wait_ready(self, timeout: float = 90) -> None:
        began = time.monotonic()
        states = {}
        while time.monotonic() - began < timeout:
            states = self.node_states()
            if set(states) == set(self.nodes) and all(s == "Ready" for s, _ in states.values()):
                return
            time.sleep(0.5)
        raise TimeoutError(f"swarm nodes not all Ready after {timeout:.0f} s: {states}")

    def label(self, node: str, **labels: str) -> None:
        """``docker node update --label-add k=v`` on the manager for ``node``."""
        args = [arg for key, value in labels.items() for arg in ("--label-add", f"{key}={value}")]
        self.docker(self.manager, "node", "update", *args, self.nodes[node].node_id)

    def load_image(self, tag: str, nodes: list[str] | None = None) -> dict[str, float]:
        """Copy ``tag`` from the host engine into the nodes: one ``docker save`` streamed to every node's
        ``docker load`` at once.  Returns node → seconds until its load finished."""
        targets = [self.nodes[n] for n in (nodes or list(self.nodes))]
        began = time.monotonic()
        save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=HOST_DOCKER)
        loads = {n.name: subprocess.Popen(["docker", "load", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, env=self.env(n.name)) for n in targets}
        done: dict[str, float] = {}
        outputs: dict[str, bytes] = {}

        def finish(name: str, proc: subprocess.Popen) -> None:
            outputs[name] = proc.stdout.read()
            proc.wait()
            done[name] = time.monotonic() - began

        waiters = [threading.Thread(target=finish, args=item, daemon=True) for item in loads.items()]
        for waiter in waiters:
            waiter.start()
        try:
            while chunk := save.stdout.read(1 << 20):
                for proc in loads.values():
                    proc.stdin.write(chunk)
        except BaseException:
            save.kill()  # a load failed (broken pipe) or we were interrupted: stop streaming
            raise
        finally:
            for proc in loads.values():
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            save_err = save.stderr.read().decode(errors="replace")
            save.wait(timeout=600)
            for waiter in waiters:
                waiter.join(timeout=600)
        if save.returncode != 0:
            raise RuntimeError(f"docker save {tag} failed ({save.returncode}): {save_err}")
        for name, proc in loads.items():
            if proc.returncode != 0:
                raise RuntimeError(f"docker load on {name} failed ({proc.returncode}): {outputs[name].decode()}")
        self.timings[f"load {tag}"] = max(done.values())
        return done

    def node_processes(self, node: str) -> list[int]:
        """Host pids that belong to a node: its engine, containerd, shims (command line names the node's
        folder, or they live in its PID namespace) and its containers (cgroup under its cgroup parent)."""
        nd = self.nodes[node]
        pidns = None
        if nd.init_pid is not None:
            with contextlib.suppress(OSError):
                pidns = os.readlink(f"/proc/{nd.init_pid}/ns/pid")
        return _processes_matching(f"{nd.dir}/", f"/{nd.netns}/", pidns)

    def node_memory(self, node: str) -> int:
        """Resident memory (bytes, RSS summed) of a node's processes."""
        total = 0
        for pid in self.node_processes(node):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def kill_node(self, node: str, timeout: float = 15) -> float:
        """Power loss: SIGKILL the node's PID-namespace init; the kernel kills everything in it (engine,
        containerd, shims, containers).  Returns once none of the node's processes is left (the seconds)."""
        nd = self.nodes[node]
        if nd.init_pid is None:
            raise RuntimeError(f"{node} is not running")
        began = time.monotonic()
        os.kill(nd.init_pid, signal.SIGKILL)
        if nd.launcher is not None:
            nd.launcher.wait(timeout=30)
        while (left := self.node_processes(node)) and time.monotonic() - began < timeout:
            time.sleep(0.05)
        nd.init_pid = None
        if left:
            raise RuntimeError(f"{node}: processes {left} outlived the kill of its PID namespace")
        return time.monotonic() - began

    def stop_node(self, node: str, grace: float = 20) -> None:
        """A clean shutdown: SIGTERM to dockerd (through tini), SIGKILL to the namespace after ``grace``."""
        nd = self.nodes[node]
        if nd.init_pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(nd.init_pid, signal.SIGTERM)
        try:
            nd.launcher.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill_node(node)
        nd.init_pid = None

    def start_node(self, node: str, wait_ready: bool = True) -> None:
        """Start a stopped or killed node again on the same data root; it rejoins the swarm by itself."""
        nd = self.nodes[node]
        if nd.init_pid is not None and _alive(nd.init_pid):
            raise RuntimeError(f"{node} is running")
        self._launch(nd)
        self._wait_engine(nd)
        if wait_ready:
            self.wait_status(node, "Ready", timeout=90)

    # -- teardown -----------------------------------------------------------------------------------

    def teardown(self, grace: float = 5) -> None:
        """Engines (SIGTERM, then SIGKILL after ``grace`` s), mounts, namespaces, links, cgroups, folders:
        all of this run's.  No ``docker swarm leave``: the whole swarm goes, with its data roots, and a
        graceful stop only costs time (a container whose PID 1 ignores SIGTERM holds dockerd 10 s)."""
        if self._torn_down:
            return
        self._torn_down = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.teardown)
        running = [n for n in self.nodes.values() if n.init_pid is not None and _alive(n.init_pid)]
        for node in running:  # workers' engines stop with their tasks: the data roots go anyway
            with contextlib.suppress(ProcessLookupError):
                os.kill(node.init_pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.launcher.wait(timeout=max(0.1, deadline - time.monotonic()))
            if _alive(node.init_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.init_pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.launcher.wait(timeout=30)
            node.init_pid = None
        _remove_run(self.prefix, self.root)
        _IN_USE.discard(self.prefix)


_IN_USE: set[str] = set()  # prefixes of this process's clusters not yet torn down


def _free_prefix(root: Path) -> str:
    for offset in range(10000):
        prefix = f"rgs{(os.getpid() + offset) % 10000}"
        if prefix in _IN_USE:
            continue
        owner = root / prefix / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            pid = None
        if pid is None or pid == os.getpid() or not _alive(pid):
            return prefix  # a dead owner's leftovers go in cleanup_stale()
    raise RuntimeError("no free swarm-cluster prefix")


def _free_subnet(seed: int) -> ipaddress.IPv4Network:
    routes = _run("ip", "-4", "route", "show", "table", "all").stdout
    used = [ipaddress.ip_network(m, strict=False) for m in re.findall(r"(?:^|\s)(\d+\.\d+\.\d+\.\d+(?:/\d+)?)",
                                                                   routes)]
    for offset in range(250):
        net = ipaddress.ip_network(f"{SUBNET_BASE}.{(seed + offset) % 250 + 1}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError(f"no free /24 in {SUBNET_BASE}.0.0/16 (ip route)")


def _cgroup_mounts() -> list[str]:
    """Shell lines that mount the host's cgroup hierarchies again under the fresh /sys of the netns."""
    lines = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        if not point.startswith("/sys/fs/cgroup"):
            continue
        if fstype == "tmpfs" and point == "/sys/fs/cgroup":
            lines.insert(0, "mount -t tmpfs -o mode=755 cgroup_root /sys/fs/cgroup")
        elif fstype in ("cgroup", "cgroup2"):
            opts = ",".join(o for o in options.split(",") if o not in ("rw", "relatime", "seclabel"))
            lines.append(f"mkdir -p {shlex.quote(point)}")
            lines.append(f"mount -t {fstype} {'-o ' + shlex.quote(opts) if opts else ''} {fstype} "
                         f"{shlex.quote(point)}")
    return lines


def _child_of(pid: int) -> int | None:
    """The first child of ``pid`` (unshare --fork's child: the PID-namespace init)."""
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
    return None


def _processes_matching(folder: str, cgroup: str, pidns: str | None) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroups = (entry / "cgroup").read_text()
            ns = os.readlink(entry / "ns" / "pid")
        except OSError:
            continue
        if (folder in cmdline or cgroup in cgroups or (pidns is not None and ns == pidns)) and _alive(
                int(entry.name)):
            found.append(int(entry.name))
    return found


def run_processes(prefix: str, root: Path = RUN_ROOT) -> list[int]:
    """Every live process of a run (any node): for the leak checks."""
    return _processes_matching(f"{root / prefix}/", f"/{prefix}n", None)


def run_leftovers(prefix: str, root: Path = RUN_ROOT) -> dict[str, list]:
    """What of a run still exists on the host: empty lists when it is all gone."""
    links = [p.name for p in Path("/sys/class/net").iterdir() if re.fullmatch(rf"{prefix}(n\d+h|gw)", p.name)]
    netns = [n.split()[0] for n in _run("ip", "netns", "list").stdout.splitlines()
             if n.strip() and re.fullmatch(rf"{prefix}(n\d+|sw)", n.split()[0])]
    mounts = [m for m in _run("findmnt", "-rn", "-o", "TARGET").stdout.splitlines()
              if m.startswith(f"{root / prefix}") or f"/{prefix}n" in m]
    cgroups = [str(p) for base in _cgroup_roots() for p in base.glob(f"{prefix}n*")]
    return {"links": links, "netns": netns, "mounts": mounts, "folders": [str(root / prefix)] if
            (root / prefix).exists() else [], "cgroups": cgroups, "processes": run_processes(prefix, root)}


def _cgroup_roots() -> list[Path]:
    roots = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            roots.append(Path(point))
    return roots


def _remove_run(prefix: str, root: Path = RUN_ROOT) -> None:
    """Remove one run's leftovers (its processes must be gone or are killed here)."""
    if not NAME_RE.match(prefix):
        raise ValueError(f"not a swarm-cluster prefix: {prefix!r}")
    for pid in run_processes(prefix, root):  # a crashed run's engines: power them off
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while run_processes(prefix, root) and time.monotonic() < deadline:
        time.sleep(0.2)
    for target in sorted(_run("findmnt", "-rn", "-o", "TARGET").stdout.splitlines(), key=len, reverse=True):
        if target.startswith(f"{root / prefix}/"):
            _run("umount", "-l", target, check=False)
    for name in _run("ip", "netns", "list").stdout.splitlines():
        name = name.split()[0] if name.strip() else ""
        if re.fullmatch(rf"{prefix}(n\d+|sw)", name):
            _run("ip", "netns", "del", name, check=False)
    for link in Path("/sys/class/net").iterdir():
        if re.fullmatch(rf"{prefix}(n\d+h|gw)", link.name):
            _run("ip", "link", "del", link.name, check=False)
    for base in _cgroup_roots():
        for group in base.glob(f"{prefix}n*"):
            if re.fullmatch(rf"{prefix}n\d+", group.name):
                for sub in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                                  reverse=True):
                    with contextlib.suppress(OSError):
                        sub.rmdir()
                with contextlib.suppress(OSError):
                    group.rmdir()
    if (root / prefix).exists():  # rm -rf: about twice shutil.rmtree's speed on a data root's layer trees
        _run("rm", "-rf", "--one-file-system", str(root / prefix), check=False, timeout=900)
        shutil.rmtree(root / prefix, ignore_errors=True)
    with contextlib.suppress(OSError):
        root.rmdir()  # only when empty


def cleanup_stale(prefix: str | None = None, root: Path = RUN_ROOT) -> list[str]:
    """Remove leftovers of crashed earlier runs: prefixes ``rgs<digits>`` whose owner process is gone
    (or only ``prefix``).  Returns the prefixes removed.  Touches nothing without that pattern."""
    candidates: set[str] = set()
    if root.exists():
        candidates |= {p.name for p in root.iterdir() if NAME_RE.match(p.name)}
    for link in Path("/sys/class/net").iterdir():
        match = re.fullmatch(r"(rgs\d{1,4})(?:n\d+h|gw)", link.name)
        if match:
            candidates.add(match.group(1))
    for line in _run("ip", "netns", "list").stdout.splitlines():
        match = re.fullmatch(r"(rgs\d{1,4})(?:n\d+|sw)", line.split()[0]) if line.strip() else None
        if match:
            candidates.add(match.group(1))
    if prefix is not None:
        candidates &= {prefix}
    removed = []
    for name in sorted(candidates):
        owner = None
        with contextlib.suppress(OSError, ValueError):
            owner = int((root / name / "owner.pid").read_text())
        if owner is not None and owner != os.getpid() and _alive(owner):
            continue  # another live run's
        if owner is None and (root / name).exists() and prefix is None:
            continue  # a folder being created right now by its owner
        _remove_run(name, root)
        removed.append(name)
    return removed


def host_engine_state() -> dict[str, dict[str, str]]:
    """The host engine's containers, volumes and networks (id → name) and its swarm state: compared
    before and after a run (the harness only reads from the host engine: docker save, inspect, ls)."""
    def names(*args: str, fmt: str) -> dict[str, str]:
        out = _run("docker", *args, "--format", fmt, env=HOST_DOCKER, timeout=60).stdout
        return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())

    swarm = _run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}", env=HOST_DOCKER).stdout.strip()
    return {"containers": names("ps", "-a", "--no-trunc", fmt="{{.ID}} {{.Names}}"),
            "volumes": names("volume", "ls", fmt="{{.Name}} {{.Name}}"),
            "networks": names("network", "ls", "--no-trunc", fmt="{{.ID}} {{.Name}}"),
            "swarm": {"state": swarm}}


def host_engine_events(since: float, until: float) -> list[dict]:
    """The host engine's container/volume/network events in a time window (other suites' activity)."""
    out = _run("docker", "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter",
               "type=container", "--filter", "type=volume", "--filter", "type=network", "--format",
               "{{json .}}", env=HOST_DOCKER, timeout=60).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def require_cluster() -> None:
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason, "swarm")


@pytest.fixture(scope="module")
def swarm_cluster():
    """A started 3-node swarm (n1 manager; n2, n3 workers); torn down after the module."""
    require_cluster()
    with SwarmCluster(3) as cluster:
        yield cluster


__all__ = ["SwarmCluster", "cleanup_stale", "host_engine_events", "host_engine_state", "kernel_features",
           "run_leftovers", "swarm_cluster"]
