#!/usr/bin/env python3
"""Boots CacheOS images under QEMU and asserts on what they do (used by tests/vm/boot-test).

Each boot:
  * starts qemu/run with the serial console on a UNIX socket (QEMU waits for us, so nothing is lost),
    the web port forwarded to a free host port, the SMBIOS asset tag that activates the in-guest
    self-test (/usr/lib/cacheos/selftest) and QEMU's isa-debug-exit device;
  * waits for the serial login prompt and for GET /healthz through the forwarded port (timing both), then fetches
    the web UI (shell and assets) through it;
  * waits for the self-test report on the second serial port;
  * logs in as `cacheos` on the serial console, which opens the chat console; on the boot with the test image disk
    it chats in German (status, attach an image, detach), then leaves with "shell" for bash and runs commands
    (cacheosctl status --json, ...);
  * tells the guest it is done; the guest ends QEMU with exit status 123 if its own checks passed.
Only the standard library is used. Every wait has a deadline; nothing sleeps blindly.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>]")
QEMU_PASS = 123      # isa-debug-exit value 0x3d
QEMU_SELFTEST_FAIL = 33


class Failure(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serial:
    """The guest's serial console, read in a background thread into one buffer (also logged)."""

    def __init__(self, path, log, deadline):
        self.buf = b""
        self.last_data = time.monotonic()
        self.lock = threading.Condition()
        self.closed = False
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Failure(f"serial socket {path} did not appear")
                time.sleep(0.05)
        self.log = open(log, "wb")
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            with self.lock:
                if not data:
                    self.closed = True
                    self.lock.notify_all()
                    return
                self.log.write(data)
                self.log.flush()
                self.buf += data
                self.last_data = time.monotonic()
                self.lock.notify_all()

    def expect(self, pattern, timeout, start=0, what=None, silence=None, accel=None):
        """Waits until `pattern` (bytes regex) matches the output after offset `start`; returns the match.

        `silence`: fail early, saying so, when the console prints nothing at all for that many seconds (a guest
        that hangs, typically under a KVM that half works), instead of waiting for the whole timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                m = rx.search(self.buf, start)
                if m:
                    return m
                if self.closed:
                    raise Failure(f"console closed while waiting for {what or pattern!r}")
                quiet = time.monotonic() - self.last_data
                if silence and quiet > silence:
                    tail = ANSI.sub(b"", self.buf[-600:]).decode(errors="replace")
                    hint = (" under KVM: the guest hangs (nested virtualisation?); CACHEOS_ACCEL=tcg boots it with "
                            "software emulation" if accel == "kvm" else ": the guest hangs")
                    raise Failure(f"no output on the serial console for {quiet:.0f} s while waiting for "
                                  f"{what or pattern!r}{hint}; console tail:\n{tail}")
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = ANSI.sub(b"", self.buf[-1500:]).decode(errors="replace")
                    raise Failure(f"timed out after {timeout}s waiting for {what or pattern!r}; console tail:\n{tail}")
                self.lock.wait(min(left, 1.0))

    def send(self, text):
        self.sock.sendall(text.encode())

    def mark(self):
        with self.lock:
            return len(self.buf)


CHAT_PROMPT = rb"cacheos> "


class Chat:
    """The chat console (cacheos-console, the login shell of `cacheos`) on the serial console."""

    def __init__(self, serial):
        self.s = serial

    def say(self, text, timeout):
        """Sends one message; returns the reply (without the echoed line), once the next prompt is there."""
        start = self.s.mark()
        self.s.send(text + "\r")
        m = self.s.expect(CHAT_PROMPT, timeout, start, what=f"the chat's reply to {text!r}")
        out = ANSI.sub(b"", self.s.buf[start:m.start()]).replace(b"\r", b"").decode(errors="replace")
        # The first line is the terminal's echo of what was typed.
        return out.split("\n", 1)[1].strip("\n") if "\n" in out else ""


class Shell:
    """A logged-in shell on the serial console, with marker-delimited command output."""

    def __init__(self, serial):
        self.s = serial
        self.n = 0

    def login(self, user, timeout, chat=None):
        """Logs in; the login shell of `cacheos` is the chat console. `chat(Chat)` talks to it first; then the
        documented "shell" command leaves it for bash, where the other checks run."""
        start = self.s.mark()
        self.s.send(user + "\r")
        # No password for the console user: straight to the chat console, with its banner naming the way out.
        self.s.expect(CHAT_PROMPT, timeout, start, what="chat console prompt after login")
        banner = ANSI.sub(b"", self.s.buf[start:]).decode(errors="replace")
        if "!sh" not in banner:
            raise Failure(f"the chat console's banner does not say how to reach a shell: {banner[-600:]!r}")
        if chat:
            chat(Chat(self.s))
        start = self.s.mark()
        self.s.send("shell\r")
        self.s.expect(rb"\$ ", 60, start, what="shell prompt after leaving the chat with 'shell'")
        # Turn off echo and make prompts and output machine-friendly.
        self.run("stty -echo cols 500; export PS1='' PS2='' TERM=dumb PAGER=cat SYSTEMD_PAGER= SYSTEMD_COLORS=0; bind 'set enable-bracketed-paste off' 2>/dev/null; true", 60)

    def run(self, cmd, timeout):
        """Runs cmd; returns (exit status, output)."""
        self.n += 1
        b, e = f"@@B{self.n}@@", f"@@E{self.n}@@"
        start = self.s.mark()
        # The markers are assembled by printf so that an echoed command line never matches them.
        self.s.send(f"printf '@@B%s@@\\n' {self.n}; {cmd}; printf '@@E%s@@ %s\\n' {self.n} $?\r")
        m = self.s.expect(re.escape(e.encode()) + rb" (\d+)", timeout, start, what=f"end of `{cmd}`")
        mb = self.s.expect(re.escape(b.encode()), 1, start, what="begin marker")
        out = self.s.buf[mb.end():m.start()]
        out = ANSI.sub(b"", out).replace(b"\r", b"").decode(errors="replace").strip("\n")
        return int(m.group(1)), out


def check_status_json(text):
    try:
        st = json.loads(text)
    except json.JSONDecodeError as e:
        raise Failure(f"cacheosctl status --json is not JSON ({e}): {text[:500]}")
    problems = []

    def need(obj, key, types, where="status"):
        if not isinstance(obj, dict) or key not in obj:
            problems.append(f"{where}.{key} missing")
            return None
        if not isinstance(obj[key], types) or isinstance(obj[key], bool):
            problems.append(f"{where}.{key} has type {type(obj[key]).__name__}")
            return None
        return obj[key]

    num = (int, float)
    need(st, "hostname", str)
    need(st, "kernel", str)
    osr = need(st, "os_release", dict)
    if osr is not None:
        for k in ("pretty_name", "id", "version_id"):
            need(osr, k, str, "status.os_release")
    need(st, "uptime_seconds", num)
    load = need(st, "load", dict)
    if load is not None:
        for k in ("one", "five", "fifteen"):
            need(load, k, num, "status.load")
    # null until cacheosd has taken its first CPU sample
    if "cpu_percent" not in st:
        problems.append("status.cpu_percent missing")
    elif st["cpu_percent"] is not None:
        need(st, "cpu_percent", num)
    mem = need(st, "memory", dict)
    if mem is not None:
        for k in ("total_bytes", "available_bytes", "used_bytes"):
            need(mem, k, int, "status.memory")
        if not problems and not (0 < mem["available_bytes"] <= mem["total_bytes"]):
            problems.append("memory.available_bytes not within (0, total_bytes]")
    disks = need(st, "disks", list)
    for i, d in enumerate(disks or []):
        need(d, "mount_point", str, f"status.disks[{i}]")
        need(d, "fs_type", str, f"status.disks[{i}]")
        for k in ("total_bytes", "used_bytes", "available_bytes"):
            need(d, k, int, f"status.disks[{i}]")
    fu = need(st, "failed_units", int)
    if fu not in (None, 0):
        problems.append(f"failed_units is {fu}, expected 0")
    if st.get("hostname") != "cacheos":
        problems.append(f"hostname is {st.get('hostname')!r}, expected 'cacheos'")
    if isinstance(osr, dict) and osr.get("id") != "debian":
        problems.append(f"os_release.id is {osr.get('id')!r}")
    if problems:
        raise Failure("cacheosctl status --json: " + "; ".join(problems))
    return st


def chat_in_german(name, run_dir="/run/cacheos"):
    """The chat on the serial console, in German: system status, attaching the image the self-test put into the
    images directory (the reply must name the mount path and a file on it), detaching it again."""
    def talk(c):
        t0 = time.monotonic()
        r = c.say("zeig mir den Systemstatus", 120)
        for want in ("Systemstatus", "Kernel", "Laufzeit", "Speicher:", "GiB"):
            if want not in r:
                raise Failure(f"chat status reply lacks {want!r}: {r!r}")
        r = c.say("häng chattest.qcow2 ein", 180)
        mount = f"{run_dir}/drives/chattest/DISK"
        if mount not in r or "hello.txt" not in r or "Eingehängt unter" not in r:
            raise Failure(f"chat attach reply does not name {mount} and hello.txt: {r!r}")
        print(f"[{name}] chat attach: {[l for l in r.splitlines() if 'Eingehängt' in l][0]}", flush=True)
        r = c.say("häng chattest wieder aus", 120)
        if "chattest" not in r or "ausgehängt" not in r:
            raise Failure(f"chat detach reply: {r!r}")
        print(f"[{name}] chat in German on the serial console: status, attach, detach ok "
              f"({time.monotonic() - t0:.1f} s)", flush=True)
    return talk


def audit_entries(text):
    data = json.loads(text)
    if isinstance(data, dict):
        for v in data.values():
            if isinstance(v, list):
                return v
        return []
    return data if isinstance(data, list) else []


def entry_key(e):
    if isinstance(e, dict):
        for k in ("id", "seq", "sequence"):
            if k in e:
                return f"{k}={e[k]}"
    return json.dumps(e, sort_keys=True)


def check_web_ui(port):
    """The web UI through the forwarded port: the shell at / with its strict headers, and every asset it names
    (public, so no token is needed from outside the guest). Returns a one-line summary; raises Failure."""
    # From outside the guest the client is not loopback: plain HTTP must redirect to HTTPS on the same port, which
    # serves the appliance's self-signed certificate (its fingerprint is what `cacheosctl web cert` shows).
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/")
    r = conn.getresponse()
    r.read()
    location = r.getheader("Location", "")
    conn.close()
    if r.status not in (301, 302, 307, 308) or not location.startswith("https://"):
        raise Failure(f"plain HTTP from outside the guest was not redirected to HTTPS: {r.status} {location!r}")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    base = f"https://127.0.0.1:{port}"
    with urllib.request.urlopen(base + "/", timeout=10, context=ctx) as r:
        html = r.read().decode()
        ctype, csp = r.headers.get("Content-Type", ""), r.headers.get("Content-Security-Policy", "")
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    if not ctype.startswith("text/html") or "<title>CacheOS</title>" not in html:
        raise Failure(f"GET / did not return the web UI's shell ({ctype}): {html[:200]!r}")
    if "default-src 'self'" not in csp:
        raise Failure(f"GET / has no strict Content-Security-Policy: {csp!r}")
    assets = re.findall(r'"(/ui/[^"]+)"', html)
    if len(assets) < 3:
        raise Failure(f"the shell names too few assets: {assets}")
    total = len(html)
    for a in assets:
        with urllib.request.urlopen(base + a, timeout=10, context=ctx) as r:
            if r.status != 200:
                raise Failure(f"GET {a}: {r.status}")
            total += len(r.read())
    return (
        f"HTTP redirected to HTTPS; web UI shell and {len(assets)} assets ({total} bytes) over TLS, "
        f"certificate SHA-256 {fingerprint[:16]}…"
    )


# Images the guest's self-test attaches as virtual drives: (file, label of its file system, text of hello.txt).
TEST_IMAGES = [
    ("t.iso", "TESTISO", "hello iso9660"),
    ("t-vfat.img", "TESTVFAT", "hello vfat"),
    ("t.qcow2", "DISK", "hello disk"),
    ("t.vdi", "DISK", "hello disk"),
    ("t.vhdx", "DISK", "hello disk"),
    ("t.vpc", "DISK", "hello disk"),
]


def make_test_images(workdir):
    """A read-only ext4 disk labelled CACHEOS-TESTIMG holding the TEST_IMAGES, built without mounting anything
    (the host kernel has no iso9660 or vfat; the appliance's has)."""
    d = os.path.join(workdir, "testimg")
    tree = os.path.join(d, "tree")
    files = os.path.join(d, "files")
    os.makedirs(tree, exist_ok=True)
    os.makedirs(files, exist_ok=True)
    run = lambda *c: subprocess.run(c, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with open(os.path.join(tree, "hello.txt"), "w") as f:
        f.write("hello iso9660\n")
    run("xorriso", "-as", "mkisofs", "-quiet", "-V", "TESTISO", "-o", os.path.join(files, "t.iso"), tree)
    with open(os.path.join(tree, "hello.txt"), "w") as f:
        f.write("hello vfat\n")
    vfat = os.path.join(files, "t-vfat.img")
    run("mkfs.vfat", "-C", "-n", "TESTVFAT", vfat, "8192")
    run("mcopy", "-i", vfat, os.path.join(tree, "hello.txt"), "::hello.txt")
    with open(os.path.join(tree, "hello.txt"), "w") as f:
        f.write("hello disk\n")
    ext4 = os.path.join(d, "t-ext4.img")
    with open(ext4, "wb") as f:
        f.truncate(16 << 20)
    run("mkfs.ext4", "-q", "-F", "-L", "DISK", "-d", tree, ext4)
    for fmt, name in [("qcow2", "t.qcow2"), ("vdi", "t.vdi"), ("vhdx", "t.vhdx"), ("vpc", "t.vpc")]:
        run("qemu-img", "convert", "-f", "raw", "-O", fmt, ext4, os.path.join(files, name))
    disk = os.path.join(workdir, "testimg.img")
    with open(disk, "wb") as f:
        f.truncate(128 << 20)
    run("mkfs.ext4", "-q", "-F", "-L", "CACHEOS-TESTIMG", "-d", files, disk)
    return disk


def make_ventoy_stick(workdir, iso):
    """A disk laid out like a stick made with Ventoy: MBR, partition 1 FAT32 labelled "Ventoy" holding the ISO and
    CACHEOS-DATA.img (an empty ext4 file), partition 2 the small VTOYEFI partition. Built without mounting (mkfs
    with an offset, mtools), since the host kernel has no vfat."""
    d = os.path.join(workdir, "ventoy")
    os.makedirs(d, exist_ok=True)
    run = lambda *c, **kw: subprocess.run(c, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    stick = os.path.join(workdir, "ventoy-stick.img")
    data_mib, vtoy_mib = 400, 32
    with open(stick, "wb") as f:
        f.truncate((1 + data_mib + vtoy_mib) << 20)
    layout = f"label: dos\nstart=2048, size={data_mib * 2048}, type=7\nstart={(1 + data_mib) * 2048}, size={vtoy_mib * 2048}, type=ef\n"
    run("sfdisk", "-q", stick, input=layout.encode())
    run("mkfs.vfat", "-F", "32", "-n", "Ventoy", "--offset", "2048", stick, str(data_mib * 1024))
    run("mkfs.vfat", "-F", "16", "-n", "VTOYEFI", "--offset", str((1 + data_mib) * 2048), stick, str(vtoy_mib * 1024))
    data = os.path.join(d, "CACHEOS-DATA.img")
    with open(data, "wb") as f:
        f.truncate(96 << 20)
    run("mkfs.ext4", "-q", "-F", "-L", "cacheos-state", data)
    part = f"{stick}@@{2048 * 512}"
    run("mcopy", "-i", part, iso, "::cacheos.iso")
    run("mcopy", "-i", part, data, "::CACHEOS-DATA.img")
    return stick


class NatProbe:
    """A TCP listener on the host's loopback that a sandbox inside the guest reaches through the appliance's NAT and
    QEMU's user network (guest address 10.0.2.2); it records what it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while chunk := conn.recv(4096):
                        data += chunk
                except OSError:
                    pass
                self.received.append(data)

    def close(self):
        self.sock.close()


def boot(args, name, image, firmware, media, workdir, persist=None, extra=(), flags=(), want_storage=None, testimg=False):
    """One boot; returns a dict of results. `persist` carries state between the two disk boots."""
    sock = os.path.join(workdir, f"{name}.sock")
    console_log = os.path.join(workdir, f"{name}.console.log")
    report_log = os.path.join(workdir, f"{name}.selftest.log")
    port = free_port()
    nat_probe = NatProbe()
    env = dict(os.environ, CACHEOS_WEB_PORT=str(port), CACHEOS_ACCEL=args.accel)
    cmd = [args.run, f"--{firmware}", f"--{media}", *flags, "--serial-socket", sock, image, "--",
           "-serial", f"file:{report_log}",
           "-smbios", "type=3,asset=cacheos-selftest",
           "-smbios", f"type=11,value=cacheos-nat-probe={nat_probe.port}",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01", *extra]
    print(f"[{name}] booting {os.path.basename(image)} ({firmware}, {media}{''.join(' ' + f for f in flags)}, "
          f"{args.accel}), web port {port}", flush=True)
    t0 = time.monotonic()
    qemu = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=open(os.path.join(workdir, f"{name}.qemu.log"), "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    result = {"name": name}
    healthz = {}

    def poll_healthz(stop):
        url = f"http://127.0.0.1:{port}/healthz"
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=3) as r:
                    body = r.read().decode()
                    if r.status == 200 and json.loads(body).get("status") == "ok":
                        healthz["t"] = time.monotonic() - t0
                        healthz["body"] = body
                        return
            except Exception:
                pass
            stop.wait(0.5)

    stop = threading.Event()
    poller = threading.Thread(target=poll_healthz, args=(stop,), daemon=True)
    try:
        serial = Serial(sock, console_log, t0 + 30)
        poller.start()
        serial.expect(rb"cacheos login: ", args.boot_timeout, what="login prompt", silence=args.silence,
                      accel=args.accel)
        result["login_s"] = time.monotonic() - t0
        print(f"[{name}] login prompt after {result['login_s']:.1f} s", flush=True)

        poller.join(max(1.0, args.boot_timeout - (time.monotonic() - t0)))
        if "t" not in healthz:
            raise Failure(f"GET http://127.0.0.1:{port}/healthz did not answer 200 {{\"status\":\"ok\"}}")
        result["healthz_s"] = healthz["t"]
        print(f"[{name}] /healthz answered after {healthz['t']:.1f} s: {healthz['body'][:120]}", flush=True)
        print(f"[{name}] {check_web_ui(port)}", flush=True)

        # The guest's own verdict, on the second serial port.
        deadline = time.monotonic() + args.boot_timeout
        report = ""
        while "CACHEOS-SELFTEST-RESULT" not in report:
            if qemu.poll() is not None or time.monotonic() > deadline:
                break
            report = open(report_log, errors="replace").read() if os.path.exists(report_log) else ""
            stop.wait(0.5)
        result["report"] = report
        if "CACHEOS-SELFTEST-RESULT: PASS" not in report:
            raise Failure(f"in-guest self-test did not pass; report:\n{report}")
        m = re.search(r"security-exposure: (.*)", report)
        result["security"] = m.group(1).strip() if m else "unknown"
        for line in re.findall(r"^(?:drive|sandbox)-.*$", report, re.M):
            print(f"[{name}] {line}", flush=True)
        if testimg and "drive-test: done" not in report:
            raise Failure("the in-guest drive test did not run (no CACHEOS-TESTIMG disk seen)")
        # Fault injection for the diagnosis (diagnose_test in the self-test, same boot as the drive test): the table
        # fault -> verdict; a wrong verdict is already one of the self-test's failures.
        for line in re.findall(r"^diagnose-(?:setup|table|row|test).*$", report, re.M):
            print(f"[{name}] {line}", flush=True)
        if testimg and "diagnose-test: done" not in report:
            raise Failure("the in-guest diagnosis fault-injection test did not run")
        if "reached the test host" in report:
            if not any(b"nat-ok from" in r for r in nat_probe.received):
                raise Failure(f"the guest reports a NAT connection but the probe received {nat_probe.received!r}")
            print(f"[{name}] NAT probe received {nat_probe.received[0].strip()!r}", flush=True)
        # The `debian` template check (template_test in the self-test).
        for line in re.findall(r"^template-.*$", report, re.M):
            print(f"[{name}] {line}", flush=True)
        if "template-test: done" not in report:
            raise Failure("the in-guest template test did not run")

        sh = Shell(serial)
        # The boot with the test image disk also chats (the self-test put chattest.qcow2 into the images dir).
        chat = chat_in_german(name) if "chat-image:" in report else None
        if testimg and chat is None:
            raise Failure("the self-test did not put chattest.qcow2 into the images directory")
        sh.login("cacheos", 120, chat)
        rc, out = sh.run("id -nG", 60)
        if rc != 0 or "cacheos" not in out.split():
            raise Failure(f"user cacheos is not in group cacheos: {out!r}")
        rc, out = sh.run("cacheosctl status --json", 120)
        if rc != 0:
            raise Failure(f"cacheosctl status --json exited {rc}: {out}")
        st = check_status_json(out)
        print(f"[{name}] cacheosctl status --json ok: {st['os_release']['pretty_name']}, kernel {st['kernel']}, "
              f"{len(st['disks'])} disks, failed_units={st['failed_units']}", flush=True)
        rc, out = sh.run("systemctl --failed --no-legend --plain --no-pager", 60)
        if rc != 0 or out.strip():
            raise Failure(f"systemctl --failed is not empty: {out!r}")
        rc, out = sh.run("cat /run/cacheos/storage", 30)
        storage = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        result["storage"] = storage.get("STORAGE")
        expect_storage = want_storage or ("disk" if media == "disk" else "ram")
        if storage.get("STORAGE") != expect_storage:
            raise Failure(f"storage is {storage}, expected STORAGE={expect_storage}")
        if persist is not None:
            rc, out = sh.run("cacheosctl audit --json", 120)
            if rc != 0:
                raise Failure(f"cacheosctl audit --json exited {rc}: {out}")
            entries = audit_entries(out)
            rc, token = sh.run("cacheosctl web token", 60)
            if rc != 0 or not token.strip():
                raise Failure(f"cacheosctl web token exited {rc}: {token}")
            token = token.strip().splitlines()[-1]
            if "entries" not in persist:
                if not entries:
                    raise Failure("audit log is empty on the first boot")
                persist["entries"] = [entry_key(e) for e in entries]
                persist["token"] = token
                print(f"[{name}] first boot: {len(entries)} audit entries recorded", flush=True)
            else:
                keys = {entry_key(e) for e in entries}
                missing = [k for k in persist["entries"] if k not in keys]
                if missing:
                    raise Failure(f"{len(missing)} audit entries of the first boot are gone after the reboot, e.g. {missing[0][:200]}")
                if token != persist["token"]:
                    raise Failure("the web token changed across the reboot")
                print(f"[{name}] second boot: all {len(persist['entries'])} audit entries of the first boot "
                      f"are still there ({len(entries)} now), web token unchanged", flush=True)
        sh.run("touch /run/cacheos-selftest/host-done", 30)
        try:
            rc = qemu.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise Failure("QEMU did not exit after the test was done")
        if rc != QEMU_PASS:
            raise Failure(f"QEMU exited with {rc}, expected {QEMU_PASS} (self-test verdict)")
        result["total_s"] = time.monotonic() - t0
        result["ok"] = True
        print(f"[{name}] PASS (QEMU exit {rc}, {result['total_s']:.1f} s in all)", flush=True)
    except Failure as e:
        result["ok"] = False
        result["error"] = str(e)
        print(f"[{name}] FAIL: {e}", flush=True)
        print(f"[{name}] logs: {console_log} {report_log}", flush=True)
    finally:
        stop.set()
        nat_probe.close()
        if qemu.poll() is None:
            os.killpg(qemu.pid, signal.SIGTERM)
            try:
                qemu.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(qemu.pid, signal.SIGKILL)
                qemu.wait()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory with cacheos.iso and cacheos.raw")
    ap.add_argument("--run", required=True, help="path of qemu/run")
    ap.add_argument("--accel", default="tcg")
    ap.add_argument("--boot-timeout", type=float, default=420)
    ap.add_argument("--silence", type=float, default=None,
                    help="seconds without any serial output before a boot counts as hung (default 60 under KVM, "
                         "240 under TCG)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--only", action="append", help="run only these boots (iso-bios-cd, iso-uefi-usb, disk: UEFI then "
                    "BIOS, vdi: cacheos.vdi on VirtualBox's default hardware under BIOS and UEFI, ventoy: the ISO with a "
                    "Ventoy-like stick holding CACHEOS-DATA.img, two boots)")
    args = ap.parse_args()
    if args.silence is None:
        args.silence = 60.0 if args.accel == "kvm" else 240.0

    workdir = args.workdir or tempfile.mkdtemp(prefix="cacheos-vmtest-")
    os.makedirs(workdir, exist_ok=True)
    out = os.path.abspath(args.out)
    iso = os.path.join(out, "cacheos.iso")
    raw = os.path.join(out, "cacheos.raw")
    results = []
    want = lambda n: not args.only or n in args.only

    if want("iso-bios-cd"):
        # This boot also carries a disk of test images for the in-guest virtual drive test.
        disk = make_test_images(workdir)
        extra = ["-drive", f"file={disk},format=raw,if=virtio,readonly=on"]
        results.append(boot(args, "iso-bios-cd", iso, "bios", "cd", workdir, extra=extra, testimg=True))
    if want("iso-uefi-usb"):
        results.append(boot(args, "iso-uefi-usb", iso, "uefi", "usb", workdir))
    if want("disk"):
        # Boot the raw disk twice through a copy-on-write overlay: the image stays pristine,
        # the data partition's writes survive between the two boots.
        overlay = os.path.join(workdir, "disk-overlay.qcow2")
        if os.path.exists(overlay):
            os.unlink(overlay)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", raw, "-F", "raw", overlay], check=True)
        persist = {}
        # First boot under UEFI, second under BIOS: both boot paths of the disk get covered.
        results.append(boot(args, "disk-uefi-1", overlay, "uefi", "disk", workdir, persist))
        if results[-1]["ok"]:
            results.append(boot(args, "disk-bios-2", overlay, "bios", "disk", workdir, persist))

    if want("ventoy"):
        # A Ventoy stick has no CACHEOS-DATA partition: the state lives in CACHEOS-DATA.img on its data partition
        # and must survive a reboot (BIOS, then UEFI), like the disk's data partition.
        stick = make_ventoy_stick(workdir, iso)
        extra = ["-drive", f"file={stick},format=raw,if=virtio"]
        persist = {}
        results.append(boot(args, "ventoy-bios-1", iso, "bios", "cd", workdir, persist, extra=extra, want_storage="ventoy"))
        if results[-1]["ok"]:
            results.append(boot(args, "ventoy-uefi-2", iso, "uefi", "cd", workdir, persist, extra=extra,
                                want_storage="ventoy"))
    if want("vdi"):
        # VirtualBox cannot be installed here: boot cacheos.vdi on the hardware VirtualBox offers by default (PIIX3,
        # AHCI SATA disk, e1000 network card), under BIOS and UEFI, without writing to the image.
        vdi = os.path.join(out, "cacheos.vdi")
        for fw in ("bios", "uefi"):
            results.append(boot(args, f"vdi-ahci-{fw}", vdi, fw, "disk", workdir, flags=("--vbox", "--snapshot")))

    print("\nboot                 result  login(s)  healthz(s)  storage  security exposure")
    for r in results:
        print(f"{r['name']:<20} {'PASS' if r['ok'] else 'FAIL':<7} {r.get('login_s', float('nan')):>8.1f}  "
              f"{r.get('healthz_s', float('nan')):>10.1f}  {r.get('storage') or '-':<7}  {r.get('security', '-')}")
    print(f"logs in {workdir}")
    sys.exit(0 if results and all(r["ok"] for r in results) else 1)


if __name__ == "__main__":
    main()
