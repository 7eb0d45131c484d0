"""Network topologies built by the test itself: network namespaces joined by veth pairs, home
routers doing NAT with nftables, an "Internet" bridge. Everything lives inside the private
network namespace the suite runs in (scripts/functional.sh: `unshare -n -m`), and every address
is from the documentation ranges (203.0.113.0/24 for the Internet, 192.0.2.0/24 for homes).

A daemon started in a namespace (`Daemon(..., netns=ns)`) serves RPC on that namespace's
127.0.0.1; the test reaches it from a thread that entered the namespace (`setns` moves only the
calling thread), so no forwarder is needed.
"""

import concurrent.futures
import ctypes
import json
import os
import shutil
import subprocess
import tempfile
import time

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
INTERNET = "203.0.113"
PUBLIC_IP = f"{INTERNET}.10"


def run(*args: str, ns: str | None = None, input: str | None = None) -> str:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout


def why_not() -> str | None:
    """Why topologies cannot be built here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if not os.environ.get("ARCHIVE_NODE_PRIVATE_MOUNTS"):
        return "needs the private network and mount namespaces of scripts/functional.sh"
    if not shutil.which("nft"):
        return "needs nftables (scripts/test.sh installs it)"
    return None


class Namespace:
    """A named network namespace, and a thread inside it that runs the test's socket calls."""

    def __init__(self, name: str):
        self.name = name
        run("ip", "netns", "add", name)
        run("ip", "link", "set", "lo", "up", ns=name)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=self._enter)

    def _enter(self):
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"{NETNS_DIR}/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.name}")
        finally:
            os.close(fd)

    def call(self, fn, *args, **kw):
        """`fn(*args, **kw)` on the namespace's thread (its sockets are in the namespace)."""
        return self._pool.submit(fn, *args, **kw).result()

    def sh(self, *args: str, input: str | None = None) -> str:
        return run(*args, ns=self.name, input=input)

    def link_bytes(self, dev: str) -> int:
        """Bytes received plus sent on `dev`."""
        stats = json.loads(self.sh("ip", "-s", "-j", "link", "show", "dev", dev))[0]["stats64"]
        return stats["rx"]["bytes"] + stats["tx"]["bytes"]

    def close(self):
        """Stops what still runs inside (a namespace lives on while a process holds it, and so
        would its links), then deletes it."""
        self._pool.shutdown(wait=False)
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            subprocess.run(["kill", "-TERM", pid], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Topology:
    """The Internet (a bridge), a public host on it, and homes behind NAT routers."""

    def __init__(self):
        os.makedirs(NETNS_DIR, exist_ok=True)
        if subprocess.run(["mountpoint", "-q", NETNS_DIR]).returncode != 0:
            run("mount", "-t", "tmpfs", "netns", NETNS_DIR)
        self.namespaces: list[Namespace] = []
        self.homes = 0
        run("ip", "link", "add", "inet", "type", "bridge")
        run("ip", "link", "set", "inet", "up")

    def _ns(self, name: str) -> Namespace:
        ns = Namespace(name)
        self.namespaces.append(ns)
        return ns

    def _wire(self, ns: Namespace, dev: str, addr: str):
        """A veth from `ns` (named `dev`, with `addr`) to the Internet bridge."""
        outside = f"v-{ns.name}"[:15]
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", dev, "netns", ns.name)
        run("ip", "link", "set", outside, "master", "inet", "up")
        ns.sh("ip", "addr", "add", addr, "dev", dev)
        ns.sh("ip", "link", "set", dev, "up")

    def public(self, name: str = "pub") -> Namespace:
        """A host on the Internet at PUBLIC_IP; its interface is `eth0`."""
        ns = self._ns(name)
        self._wire(ns, "eth0", f"{PUBLIC_IP}/24")
        return ns

    def home(self, name: str, symmetric: bool = False, igd: bool = False) -> Namespace:
        """A host behind its own NAT router. The router masquerades the home's traffic out of
        its WAN address, keeps the source port when it can (`symmetric`: a random port for
        every new flow, which defeats hole punching) and silently drops what nobody inside asked
        for. Homes cannot reach each other except through their routers' WAN addresses.
        `igd`: the router also runs miniupnpd, a UPnP Internet gateway device, on its LAN side
        (its log is `router.igd_log`)."""
        i = self.homes
        self.homes += 1
        router, host = self._ns(f"rt-{name}"), self._ns(name)
        self._wire(router, "wan", f"{INTERNET}.{20 + i}/24")
        lan_router, lan_host = f"192.0.2.{64 * i + 1}", f"192.0.2.{64 * i + 2}"
        run("ip", "link", "add", "lan", "netns", router.name, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        router.sh("ip", "addr", "add", f"{lan_router}/26", "dev", "lan")
        router.sh("ip", "link", "set", "lan", "up")
        host.sh("ip", "addr", "add", f"{lan_host}/26", "dev", "eth0")
        host.sh("ip", "link", "set", "eth0", "up")
        host.sh("ip", "route", "add", "default", "via", lan_router)
        router.sh("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        ports = "fully-random" if symmetric else ""
        host.lan_ip, host.wan_ip, host.router = lan_host, f"{INTERNET}.{20 + i}", router
        if igd:
            self._igd(router, symmetric)
            return host
        router.sh("nft", "-f", "-", input=f"""
table ip nat {{
  chain postrouting {{ type nat hook postrouting priority srcnat; oifname "wan" masquerade {ports}; }}
}}
table ip filter {{
  chain forward {{
    type filter hook forward priority 0; policy drop;
    iifname "lan" accept
    ct state established,related accept
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }}
}}
""")
        return host

    def _igd(self, router: Namespace, symmetric: bool):
        """The same NAT as `home`, in the `inet filter` table with the chains miniupnpd adds its
        port mappings to (what its nft_init.sh makes), and miniupnpd serving the LAN."""
        ports = "fully-random" if symmetric else ""
        router.sh("nft", "-f", "-", input=f"""
table inet filter {{
  chain forward {{
    type filter hook forward priority 0; policy drop;
    jump miniupnpd
    iifname "lan" accept
    ct state established,related accept
  }}
  chain miniupnpd {{ }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }}
  chain prerouting {{ type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }}
  chain postrouting {{
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan" masquerade {ports}
  }}
  chain prerouting_miniupnpd {{ }}
  chain postrouting_miniupnpd {{ }}
}}
""")
        # SSDP discovery is multicast: the LAN side must route it.
        router.sh("ip", "route", "add", "239.0.0.0/8", "dev", "lan")
        work = tempfile.mkdtemp(prefix=f"igd-{router.name}-")
        conf = os.path.join(work, "miniupnpd.conf")
        with open(conf, "w") as f:
            f.write(f"""ext_ifname=wan
listening_ip=lan
http_port=0
enable_upnp=yes
enable_natpmp=no
secure_mode=yes
system_uptime=yes
lease_file={work}/leases
uuid=3d3cec3a-8cf0-11e0-98ee-{abs(hash(router.name)) % 16**12:012x}
upnp_table_name=filter
upnp_nat_table_name=filter
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 192.0.2.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
""")
        router.igd_log = os.path.join(work, "miniupnpd.log")
        log = open(router.igd_log, "w")
        # -d: stays in the foreground and logs to stderr; it dies with the namespace (close()).
        proc = subprocess.Popen(["ip", "netns", "exec", router.name, "miniupnpd", "-d", "-f", conf],
                                stdout=log, stderr=subprocess.STDOUT)
        # Ready once it listens for SSDP searches (it opens that socket after its HTTP one): a
        # node started before would search, hear nothing and report no gateway.
        deadline = time.monotonic() + 30
        while not router.sh("ss", "-Hlun", "sport = :1900").strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"miniupnpd is not listening for SSDP: {open(router.igd_log).read()}")
            time.sleep(0.05)

    def close(self):
        for ns in reversed(self.namespaces):
            ns.close()
            # The outside end of its veth goes with the namespace, unless something held it.
            subprocess.run(["ip", "link", "del", f"v-{ns.name}"[:15]], capture_output=True)
        subprocess.run(["ip", "link", "del", "inet"], capture_output=True)
