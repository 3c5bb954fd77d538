#!/usr/bin/env python3
"""dpapp: small socket apps for the datapath VM tests (tests/vm/2[2-6]-*.sh),
run unprivileged inside pod network namespaces. Python 3 standard library.

Each command prints `ok ...` lines for what held, `FAIL: ...` lines for
violations of the datapath contract (and exits 1), and `info ...` lines.

  server PORT [--bind ADDR] [--backlog N] [--accept-delay S]
         [--accept-after FILE] [--greet STR] [--mode echo|count|hash]
         [--marker M] [--epoll]
      A TCP server (dual-stack on :: unless --bind). Per connection: send
      --greet at once after accept(), then
        echo   echo every byte until EOF;
        count  read 64-byte race messages (see `race`) until EOF, check each
               one, answer "OK <messages> <bad>\\n";
        hash   read until EOF (printing "progress conn=N bytes=B" lines),
               answer "<sha256> <length>\\n".
      --epoll: one non-blocking, level-triggered epoll loop (greet + echo),
      which counts EAGAINs and readiness that was not real (a readiness
      report followed by EAGAIN) per connection: `spurious` must be 0.
      One log line per event: "conn=N peer=... event=...". accept() errors
      are logged and the loop goes on.

  nbclient PORT --conn HOST,lt|et|block... [--concurrent] --marker M
           --greet G [--expect-wait S] [--max-cpu C]
      Per --conn (one after the other, or each in its own thread): connect
      and send at once (non-blocking with an epoll loop, level- or
      edge-triggered, or blocking), then read the server's greeting and the
      echo. Prints "WAITING <trigger> <family>" once the first send was
      tried (blocking: once connect() returned). Fails on
      readiness that was not real (EPOLLOUT/EPOLLIN followed by EAGAIN), on
      more than --max-cpu seconds of the thread's CPU time (getrusage
      RUSAGE_THREAD) while waiting to send, on more than 4 epoll wakeups,
      and, with --expect-wait, if the send went through sooner than S
      seconds after WAITING.

  race PORT --run after|before|fastopen,HOST,N,K... --msgs P --marker M
      Per run, N connections one after the other; per connection, K threads send P fixed 64-byte messages carrying the
      marker on one socket: `after`: all start the moment connect() returns;
      `before`: they loop on send() before connect() is called (EPIPE until
      connected); `fastopen`: one thread connects with sendto(MSG_FASTOPEN)
      while the others loop as in `before`. Then shutdown(SHUT_WR) and read
      the server's (`server --mode count`) answer. Each connection must end
      clean (the server decrypted exactly the messages whose send()
      succeeded, none bad) or reset (an error); `after` must be clean.

  finclient HOST[,HOST...] PORT --conns N --msgs P --marker M
      N connections per HOST, all opened before any answer is read: connect, send P messages, shutdown(SHUT_WR) at
      once (the server accepts late), read the answer: clean or reset.

  probe HOST PORT --marker M --expect ok|fail [--greet G] [--min-block S]
        [--max-block S]
      Blocking: connect, send the marker, read. --expect fail: some step
      must fail (reset, EBADMSG, ...) without the app ever reading bytes that
      are not the server's plaintext; --min-block/--max-block bound the time
      from connect() to the failure. Prints "CONNECTING" before connect().

  churn HOST PORT --marker M (--while-file F | --count N) [--threads N]
      Connection churn (rotation under load): each thread connects, sends a
      marker line, reads the echo (`server`, echo mode) and closes, again
      and again while F exists (or until N connections were made). Prints one line `CHURN ok=N failed=N
      secs=S rate=R` (connections per second) and each failure's error;
      exits 1 if any connection failed or read bytes that were not its echo.

  stream HOST PORT --go-file F [--chunk B] [--pause S]
      Send deterministic pseudo-random data while F exists, then
      shutdown(SHUT_WR) and compare the server's (`--mode hash`) digest and
      length with its own.
"""

import argparse
import errno
import hashlib
import os
import random
import re
import resource
import select
import socket
import struct
import sys
import threading
import time

MSG_LEN = 64
ALLOWED_RESET = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.EBADMSG,
                 errno.ETIMEDOUT, errno.EIO, errno.ENOTCONN, errno.EPROTO}
_out_lock = threading.Lock()
_failed = False
_nfail = [0]


def say(*parts):
    with _out_lock:
        print(*parts, flush=True)


def fail(msg):
    global _failed
    _failed = True
    _nfail[0] += 1
    say("FAIL:", msg)


def ename(e):
    return errno.errorcode.get(e, str(e)) if isinstance(e, int) else str(e)


def cpu():
    """CPU time (user + system) of the calling thread."""
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime


def addr_of(host, port):
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, (host, port)


def fam_name(fam):
    return "IPv6" if fam == socket.AF_INET6 else "IPv4"


def blocking_socket(fam, timeout):
    """A blocking socket (no Python timeout: Python implements those with
    O_NONBLOCK and poll()), bounded by the kernel's SO_SNDTIMEO and
    SO_RCVTIMEO (connect() honours SO_SNDTIMEO)."""
    s = socket.socket(fam, socket.SOCK_STREAM)
    tv = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    return s


def race_msg(marker, conn, tid, seq):
    m = f"{marker}:{conn:04d}:{tid:02d}:{seq:06d}:".encode()
    if len(m) > MSG_LEN - 1:
        raise SystemExit("marker too long")
    return m + b"." * (MSG_LEN - 1 - len(m)) + b"\n"


# ---------------------------------------------------------------- server


class Server:
    def __init__(self, a):
        self.a = a
        self.n = 0
        self.lock = threading.Lock()
        if a.marker:
            self.msg_re = re.compile(re.escape(a.marker.encode()) + rb":\d{4}:\d{2}:\d{6}:\.+\n\Z")

    def log(self, conn, peer, **kv):
        say(f"conn={conn} peer={peer} " + " ".join(f"{k}={v}" for k, v in kv.items()))

    def listener(self):
        a = self.a
        if a.bind:
            fam, addr = addr_of(a.bind, a.port)
        else:
            fam, addr = socket.AF_INET6, ("::", a.port)
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6 and not a.bind:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        ls.bind(addr)
        ls.listen(a.backlog)
        say(f"listening on {addr[0]} port {a.port} backlog {a.backlog}")
        return ls

    def run(self):
        a = self.a
        ls = self.listener()
        if a.accept_after:
            while not os.path.exists(a.accept_after):
                time.sleep(0.05)
            say("accepting (found " + a.accept_after + ")")
        if a.accept_delay:
            time.sleep(a.accept_delay)
            say(f"accepting (after {a.accept_delay} s)")
        if a.epoll:
            return self.run_epoll(ls)
        while True:
            try:
                c, peer = ls.accept()
            except OSError as e:
                say(f"accept error={ename(e.errno)}")
                time.sleep(0.05)
                continue
            with self.lock:
                self.n += 1
                n = self.n
            threading.Thread(target=self.handle, args=(c, peer[0], n), daemon=True).start()

    def handle(self, c, peer, n):
        a = self.a
        got = 0
        try:
            if a.greet:
                t = time.monotonic()
                c.sendall(a.greet.encode() + b"\n")
                self.log(n, peer, event="greeted", secs=f"{time.monotonic() - t:.3f}")
            if a.mode == "echo":
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got += len(d)
                    c.sendall(d)
                self.log(n, peer, event="eof", bytes=got)
            elif a.mode == "count":
                buf, msgs, bad = b"", 0, 0
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got += len(d)
                    buf += d
                    while len(buf) >= MSG_LEN:
                        m, buf = buf[:MSG_LEN], buf[MSG_LEN:]
                        if self.msg_re.match(m):
                            msgs += 1
                        else:
                            bad += 1
                            if bad <= 3:
                                self.log(n, peer, event="bad-message", hex=m[:32].hex())
                if buf:
                    bad += 1
                    self.log(n, peer, event="bad-tail", hex=buf[:32].hex())
                self.log(n, peer, event="eof", bytes=got, msgs=msgs, bad=bad)
                c.sendall(f"OK {msgs} {bad}\n".encode())
            elif a.mode == "hash":
                h = hashlib.sha256()
                last = time.monotonic()
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    got += len(d)
                    h.update(d)
                    if time.monotonic() - last > 0.5:
                        last = time.monotonic()
                        say(f"progress conn={n} bytes={got}")
                self.log(n, peer, event="eof", bytes=got, sha256=h.hexdigest())
                c.sendall(f"{h.hexdigest()} {got}\n".encode())
            c.shutdown(socket.SHUT_WR)
            # Wait for the peer's close (its last read), then close.
            c.settimeout(30)
            try:
                while c.recv(4096):
                    pass
            except OSError:
                pass
        except OSError as e:
            self.log(n, peer, event="error", errno=ename(e.errno), bytes=got)
        finally:
            c.close()

    def run_epoll(self, ls):
        a = self.a
        ls.setblocking(False)
        ep = select.epoll()
        ep.register(ls.fileno(), select.EPOLLIN)
        conns = {}  # fd -> dict
        while True:
            evs = ep.poll()
            for fd, ev in evs:
                if fd == ls.fileno():
                    try:
                        c, peer = ls.accept()
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        say(f"accept error={ename(e.errno)}")
                        continue
                    self.n += 1
                    c.setblocking(False)
                    st = dict(sock=c, peer=peer[0], n=self.n, out=a.greet.encode() + b"\n" if a.greet else b"",
                              greeted=False, eagain=0, spurious=0, t0=time.monotonic(), cpu0=cpu(),
                              wakeups=0, got=0)
                    conns[c.fileno()] = st
                    self.ep_flush(st)
                    ep.register(c.fileno(), select.EPOLLIN | (select.EPOLLOUT if st["out"] else 0))
                    continue
                st = conns.get(fd)
                if st is None:
                    continue
                st["wakeups"] += 1
                c, closed = st["sock"], False
                if ev & select.EPOLLOUT:
                    if not self.ep_flush(st, from_event=True):
                        closed = True
                if not closed and ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    try:
                        d = c.recv(65536)
                        if not d:
                            self.log(st["n"], st["peer"], event="eof", bytes=st["got"], spurious=st["spurious"])
                            closed = True
                        else:
                            st["got"] += len(d)
                            st["out"] += d
                            self.ep_flush(st)
                    except BlockingIOError:
                        st["spurious"] += 1
                        self.log(st["n"], st["peer"], event="spurious-in", ev=hex(ev))
                    except OSError as e:
                        self.log(st["n"], st["peer"], event="error", errno=ename(e.errno), bytes=st["got"])
                        closed = True
                if closed:
                    ep.unregister(fd)
                    c.close()
                    del conns[fd]
                else:
                    ep.modify(fd, select.EPOLLIN | (select.EPOLLOUT if st["out"] else 0))

    def ep_flush(self, st, from_event=False):
        c = st["sock"]
        while st["out"]:
            try:
                k = c.send(st["out"])
            except BlockingIOError:
                st["eagain"] += 1
                if from_event:
                    st["spurious"] += 1
                    self.log(st["n"], st["peer"], event="spurious-out")
                return True
            except OSError as e:
                self.log(st["n"], st["peer"], event="error", errno=ename(e.errno), bytes=st["got"])
                return False
            st["out"] = st["out"][k:]
            from_event = False
            if not st["greeted"] and not st["out"]:
                st["greeted"] = True
                self.log(st["n"], st["peer"], event="greeted", eagain=st["eagain"],
                         secs=f"{time.monotonic() - st['t0']:.3f}", wakeups=st["wakeups"],
                         cpu=f"{cpu() - st['cpu0']:.3f}", spurious=st["spurious"])
        return True


# ------------------------------------------------------------- nbclient


def cmd_nbclient(a):
    runs = []
    for c in a.conn:
        host, trigger = c.rsplit(",", 1)
        if trigger not in ("lt", "et", "block"):
            raise SystemExit(f"--conn {c}: trigger must be lt, et or block")
        runs.append((host, trigger))
    results = [None] * len(runs)

    def one(i):
        try:
            results[i] = nbclient_one(a, *runs[i])
        except Exception as e:  # noqa: BLE001 - reported as a failure
            fail(f"{runs[i]}: {e!r}")
            results[i] = 1

    if a.concurrent:
        ts = [threading.Thread(target=one, args=(i,)) for i in range(len(runs))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    else:
        for i in range(len(runs)):
            one(i)
    return 1 if _failed or any(results) else 0


def nbclient_one(a, host, trigger):
    fam, addr = addr_of(host, a.port)
    tag = f"{trigger} {fam_name(fam)}"
    msg = f"{a.marker}-{trigger}-{fam_name(fam)}\n".encode()
    bad = []

    def bad_(m):
        bad.append(m)
        fail(m)

    expect = a.greet.encode() + b"\n" + msg
    s = socket.socket(fam, socket.SOCK_STREAM)
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    got, spurious, wakeups, eagain = b"", 0, 0, 0
    events = []
    if trigger == "block":
        s.close()
        s = blocking_socket(fam, a.timeout)
        try:
            s.connect(addr)
            tc = time.monotonic()
            say(f"WAITING {tag}")
            t1, c1 = time.monotonic(), cpu()
            s.sendall(msg)
            sent_at, sent_cpu = time.monotonic(), cpu()
            while len(got) < len(expect):
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except (OSError, socket.timeout) as e:
            bad_(f"{tag}: {ename(getattr(e, 'errno', None)) or e} (read {got!r})")
            return 1
        s.close()
        info = f"connect {tc - t0:.3f} s, send blocked {sent_at - t1:.3f} s using {sent_cpu - c1:.3f} s CPU"
    else:
        s.setblocking(False)
        r = s.connect_ex(addr)
        if r not in (0, errno.EINPROGRESS):
            bad_(f"{tag}: connect: {ename(r)}")
            return 1
        out = msg

        def try_send(from_event):
            nonlocal out, eagain, spurious
            while out:
                try:
                    k = s.send(out)
                except BlockingIOError:
                    eagain += 1
                    if from_event:
                        spurious += 1
                        events.append(f"{time.monotonic() - t0:.3f}:EPOLLOUT-then-EAGAIN")
                    return
                from_event = False
                out = out[k:]

        try_send(False)
        first = "EAGAIN" if out else "sent"
        t1, c1 = time.monotonic(), cpu()
        say(f"WAITING {tag}")
        sent_at, sent_cpu = (None, None) if out else (t1, c1)
        ep = select.epoll()
        et = select.EPOLLET if trigger == "et" else 0
        ep.register(s.fileno(), select.EPOLLIN | (select.EPOLLOUT if out else 0) | et)
        eof = False
        while len(got) < len(expect) and not eof:
            left = deadline - time.monotonic()
            if left <= 0:
                bad_(f"{tag}: timed out after {a.timeout} s (sent: {not out}, read {len(got)} of {len(expect)} bytes; events {events})")
                return 1
            for _, ev in ep.poll(left):
                wakeups += 1
                events.append(f"{time.monotonic() - t0:.3f}:{ev:#x}")
                if ev & select.EPOLLERR:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    bad_(f"{tag}: EPOLLERR ({ename(err)}); events {events}")
                    return 1
                if ev & select.EPOLLOUT and out:
                    try_send(True)
                    if not out:
                        sent_at, sent_cpu = time.monotonic(), cpu()
                        if not et:
                            ep.modify(s.fileno(), select.EPOLLIN)
                if ev & (select.EPOLLIN | select.EPOLLHUP):
                    first_read = True
                    while True:
                        try:
                            d = s.recv(65536)
                        except BlockingIOError:
                            if first_read and not ev & select.EPOLLHUP:
                                spurious += 1
                                events.append(f"{time.monotonic() - t0:.3f}:EPOLLIN-then-EAGAIN")
                            break
                        except OSError as e:
                            bad_(f"{tag}: recv: {ename(e.errno)} after {len(got)} bytes; events {events}")
                            return 1
                        first_read = False
                        if not d:
                            eof = True
                            break
                        got += d
        s.close()
        if sent_at is None:
            bad_(f"{tag}: never sent; events {events}")
            return 1
        info = (f"first send {first}, sent {sent_at - t1:.3f} s after it, {wakeups} epoll wakeups, "
                f"{eagain} EAGAIN, {sent_cpu - c1:.3f} s CPU while waiting")
        if spurious:
            bad_(f"{tag}: {spurious} readiness report(s) that were not real (a busy loop): events {events}")
    wait, wcpu = sent_at - t1, sent_cpu - c1
    if got != expect:
        bad_(f"{tag}: read {got!r}, expected {expect!r} ({info})")
        return 1
    if a.expect_wait is not None and wait < a.expect_wait:
        bad_(f"{tag}: the send went through {wait:.3f} s after WAITING, expected it to wait >= {a.expect_wait} s for keys ({info})")
    if wcpu > a.max_cpu:
        bad_(f"{tag}: {wcpu:.3f} s of CPU while waiting to send (max {a.max_cpu}): a busy loop? ({info})")
    if trigger != "block" and wakeups > 4:
        bad_(f"{tag}: {wakeups} epoll wakeups for one send and one read: events {events} ({info})")
    if bad:
        return 1
    say(f"ok nbclient {tag}: {info}; read greeting and echo ({len(got)} bytes)")
    return 0


# ----------------------------------------------------------------- race


def read_answer(s, timeout=60):
    """The server's one-line answer (blocking socket: SO_RCVTIMEO bounds it)."""
    tv = struct.pack("ll", int(timeout), 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf


def judge(tag, sent, err, s, counts):
    """After the senders: half-close, read the server's answer, classify."""
    answer, rerr = b"", None
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        rerr = e.errno
    if rerr is None:
        try:
            answer = read_answer(s)
        except (socket.timeout, BlockingIOError):
            fail(f"{tag}: no answer from the server within 60 s (sent {sent})")
            counts["violations"] += 1
            return
        except OSError as e:
            rerr = e.errno
    s.close()
    m = re.fullmatch(rb"OK (\d+) (\d+)\n", answer)
    if m:
        got, bad = int(m.group(1)), int(m.group(2))
        if bad:
            fail(f"{tag}: the server read {bad} bad message(s) (not what was sent: ciphertext or corruption)")
            counts["violations"] += 1
        elif err is None and got != sent:
            fail(f"{tag}: {sent} messages sent, the server decrypted {got}")
            counts["violations"] += 1
        elif err is None:
            counts["clean"] += 1
        else:
            counts["reset"] += 1  # a sender failed, the server read what got through intact
            counts["errors"][ename(err)] = counts["errors"].get(ename(err), 0) + 1
        return
    if answer:
        fail(f"{tag}: unexpected answer {answer[:80]!r}")
        counts["violations"] += 1
        return
    e = err or rerr
    if e is not None and e not in ALLOWED_RESET:
        fail(f"{tag}: unexpected error {ename(e)}")
        counts["violations"] += 1
    counts["reset"] += 1
    counts["errors"][ename(e) if e else "EOF"] = counts["errors"].get(ename(e) if e else "EOF", 0) + 1


def cmd_race(a):
    rc = 0
    for spec in a.run:
        try:
            variant, host, conns, threads = spec.split(",")
        except ValueError:
            raise SystemExit(f"--run {spec}: VARIANT,HOST,CONNS,THREADS")
        if variant not in ("after", "before", "fastopen"):
            raise SystemExit(f"--run {spec}: variant must be after, before or fastopen")
        rc |= race_run(a, variant, host, int(conns), int(threads))
    return rc


def race_run(a, variant, host, conns, nthreads):
    fam, addr = addr_of(host, a.port)
    fails0 = _nfail[0]
    counts = {"clean": 0, "reset": 0, "violations": 0, "errors": {}}
    pre_fail = 0
    for conn in range(conns):
        tag = f"race {variant} {fam_name(fam)} conn {conn}"
        s = socket.socket(fam, socket.SOCK_STREAM)
        go = threading.Event()
        connected = threading.Event()
        lock = threading.Lock()
        state = {"sent": 0, "err": None, "pre": 0, "looping": 0}

        def note_err(e):
            with lock:
                if state["err"] is None:
                    state["err"] = e

        def sender(tid, loop_before):
            seq = 0
            if loop_before:
                with lock:
                    state["looping"] += 1
            while seq < a.msgs:
                if not loop_before:
                    go.wait()
                was_connected = connected.is_set()
                try:
                    k = s.send(race_msg(a.marker, conn, tid, seq), socket.MSG_NOSIGNAL)
                except OSError as e:
                    # Began before connect() returned: the unconnected socket's EPIPE.
                    if loop_before and not was_connected and e.errno in (errno.EPIPE, errno.ENOTCONN):
                        with lock:
                            state["pre"] += 1
                        continue
                    note_err(e.errno)
                    return
                if k != MSG_LEN:
                    fail(f"{tag}: short send {k}")
                    note_err(errno.EIO)
                    return
                with lock:
                    state["sent"] += 1
                seq += 1

        def tfo_connector():
            try:
                k = s.sendto(race_msg(a.marker, conn, 0, 0), socket.MSG_FASTOPEN, addr)
            except OSError as e:
                connected.set()
                note_err(e.errno)
                return
            connected.set()
            if k != MSG_LEN:
                # Part went (TFO), the rest is lost: keep the stream aligned.
                note_err(errno.EIO)
                return
            with lock:
                state["sent"] += 1
            seq = 1
            while seq < a.msgs:
                try:
                    s.send(race_msg(a.marker, conn, 0, seq), socket.MSG_NOSIGNAL)
                except OSError as e:
                    note_err(e.errno)
                    return
                with lock:
                    state["sent"] += 1
                seq += 1

        threads = []
        if variant == "after":
            threads = [threading.Thread(target=sender, args=(t, False)) for t in range(nthreads)]
            for t in threads:
                t.start()
            try:
                s.connect(addr)
            except OSError as e:
                note_err(e.errno)
            connected.set()
            go.set()
        else:
            loopers = nthreads - 1 if variant == "fastopen" else nthreads
            threads = [threading.Thread(target=sender, args=(t + 1, True)) for t in range(loopers)]
            for t in threads:
                t.start()
            # Every looper has failed at least once: they are in the loop.
            end = time.monotonic() + 10
            while time.monotonic() < end:
                with lock:
                    if state["pre"] >= loopers:
                        break
                time.sleep(0.001)
            if variant == "fastopen":
                tc = threading.Thread(target=tfo_connector)
                threads.append(tc)
                tc.start()
                connected.wait(60)
            else:
                try:
                    s.connect(addr)
                except OSError as e:
                    note_err(e.errno)
                connected.set()
        for t in threads:
            t.join(120)
            if t.is_alive():
                fail(f"{tag}: a sender is still blocked after 120 s")
                os._exit(1)
        pre_fail += state["pre"]
        before = dict(counts)
        judge(tag, state["sent"], state["err"], s, counts)
        if a.verbose:
            say(f"info {tag}: sent {state['sent']}, first error {ename(state['err']) if state['err'] else '-'}, "
                f"clean {counts['clean'] - before['clean']}")
    summary = (f"{conns} connections x {nthreads} threads: {counts['clean']} clean, {counts['reset']} reset "
               f"(errors {counts['errors']}), {pre_fail} pre-connect EPIPE/ENOTCONN sends")
    if variant == "after" and counts["clean"] != conns:
        fail(f"race after {fam_name(fam)}: senders that start after connect() returned go through the gate: "
             f"every connection must be clean: {summary}")
    if counts["violations"] or _nfail[0] != fails0:
        fail(f"race {variant} {fam_name(fam)}: {summary}")
        return 1
    say(f"ok race {variant} {fam_name(fam)}: {summary}")
    return 0


def cmd_finclient(a):
    counts = {"clean": 0, "reset": 0, "violations": 0, "errors": {}}
    socks = []
    for conn in range(a.conns * len(a.host.split(","))):
        fam, addr = addr_of(a.host.split(",")[conn % len(a.host.split(","))], a.port)
        s = blocking_socket(fam, 60)
        s.connect(addr)
        sent, err = 0, None
        try:
            for seq in range(a.msgs):
                s.sendall(race_msg(a.marker, conn, 0, seq))
                sent += 1
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err = e.errno
        socks.append((conn, s, sent, err, fam))
    say(f"SENT: {len(socks)} connections sent their data and FIN")
    for conn, s, sent, err, fam in socks:
        tag = f"finclient {fam_name(fam)} conn {conn}"
        answer, rerr = b"", None
        try:
            answer = read_answer(s, 90)
        except (socket.timeout, BlockingIOError):
            fail(f"{tag}: no answer within 90 s")
            counts["violations"] += 1
            continue
        except OSError as e:
            rerr = e.errno
        s.close()
        m = re.fullmatch(rb"OK (\d+) (\d+)\n", answer)
        if m and int(m.group(2)) == 0 and int(m.group(1)) == sent and err is None:
            counts["clean"] += 1
        elif m or answer:
            fail(f"{tag}: answer {answer!r} for {sent} messages sent (send error {ename(err) if err else '-'})")
            counts["violations"] += 1
        else:
            e = err or rerr
            if e is not None and e not in ALLOWED_RESET:
                fail(f"{tag}: unexpected error {ename(e)}")
            counts["reset"] += 1
            k = ename(e) if e else "EOF"
            counts["errors"][k] = counts["errors"].get(k, 0) + 1
    summary = f"{counts['clean']} decrypted intact at the server, {counts['reset']} reset ({counts['errors']})"
    if _failed:
        fail(f"finclient: {summary}")
        return 1
    say(f"ok finclient: data + FIN before accept(), {len(socks)} connections ({a.host}): {summary}")
    return 0


# ---------------------------------------------------------------- probe


def cmd_probe(a):
    fam, addr = addr_of(a.host, a.port)
    tag = f"probe {fam_name(fam)}"
    msg = f"{a.marker}\n".encode()
    greet = a.greet.encode() + b"\n" if a.greet else b""
    expect = greet + msg
    s = blocking_socket(fam, a.timeout)
    say("CONNECTING")
    t0 = time.monotonic()
    step, got, err = "connect", b"", None
    try:
        s.connect(addr)
        tc = time.monotonic()
        say(f"CONNECTED {tc - t0:.3f}")
        step = "send"
        s.sendall(msg)
        step = "recv"
        while len(got) < len(expect):
            d = s.recv(65536)
            if not d:
                break
            got += d
    except (socket.timeout, BlockingIOError):
        err = "timeout"
    except OSError as e:
        err = e.errno
    t = time.monotonic() - t0
    s.close()
    what = f"{step} {'failed: ' + ename(err) if err else 'done'} after {t:.3f} s, read {len(got)} bytes"
    if got and got != expect[:len(got)]:
        fail(f"{tag}: the app read bytes that are not the server's plaintext: {got[:64]!r} ({what})")
        return 1
    if a.expect == "ok":
        if got != expect:
            fail(f"{tag}: expected {expect!r}: {what}")
            return 1
        say(f"ok {tag}: {what}")
        return 0
    if err is None and got == expect:
        fail(f"{tag}: the connection worked, expected it to fail closed ({what})")
        return 1
    if err == "timeout":
        fail(f"{tag}: no failure within {a.timeout} s ({what})")
        return 1
    if err is None:
        err_n = "EOF"
    else:
        err_n = ename(err)
        if err not in ALLOWED_RESET:
            fail(f"{tag}: unexpected error {err_n} ({what})")
            return 1
    if a.min_block is not None and t < a.min_block:
        fail(f"{tag}: failed after {t:.3f} s, expected to block >= {a.min_block} s first ({what})")
        return 1
    if a.max_block is not None and t > a.max_block:
        fail(f"{tag}: failed after {t:.3f} s, expected within {a.max_block} s ({what})")
        return 1
    say(f"ok {tag}: fails closed: {what}")
    say(f"RESULT step={step} error={err_n} secs={t:.3f}")
    return 0


# ---------------------------------------------------------------- churn


def cmd_churn(a):
    fam, addr = addr_of(a.host, a.port)
    lock = threading.Lock()
    counts = {"ok": 0, "failed": 0}
    errors = []

    def one(tid, i):
        msg = f"{a.marker}-{tid}-{i}\n".encode()
        s = blocking_socket(fam, 60)
        got, step = b"", "connect"
        try:
            s.connect(addr)
            step = "send"
            s.sendall(msg)
            step = "recv"
            while len(got) < len(msg):
                d = s.recv(65536)
                if not d:
                    break
                got += d
            err = None if got == msg else f"read {got[:64]!r}"
        except (socket.timeout, BlockingIOError):
            err = f"{step}: timeout"
        except OSError as e:
            err = f"{step}: {ename(e.errno)}"
        finally:
            s.close()
        return err

    started = [0]

    def more():
        if a.count is not None:
            with lock:
                started[0] += 1
                return started[0] <= a.count
        return os.path.exists(a.while_file)

    def worker(tid):
        i = 0
        while more():
            err = one(tid, i)
            i += 1
            with lock:
                if err is None:
                    counts["ok"] += 1
                else:
                    counts["failed"] += 1
                    errors.append(f"{time.monotonic() - t0:.3f} s thread {tid} conn {i}: {err}")

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    for e in errors[:20]:
        say(f"failed: {e}")
    total = counts["ok"] + counts["failed"]
    say(f"CHURN ok={counts['ok']} failed={counts['failed']} secs={secs:.1f} rate={total / secs:.1f}")
    return 1 if counts["failed"] else 0


# --------------------------------------------------------------- stream


def cmd_stream(a):
    fam, addr = addr_of(a.host, a.port)
    tag = f"stream {fam_name(fam)}"
    s = blocking_socket(fam, 120)
    s.connect(addr)
    rnd = random.Random(a.seed)
    h = hashlib.sha256()
    sent = 0
    last = time.monotonic()
    say("STREAMING")
    try:
        while os.path.exists(a.go_file):
            d = rnd.randbytes(a.chunk)
            s.sendall(d)
            h.update(d)
            sent += len(d)
            if time.monotonic() - last > 0.5:
                last = time.monotonic()
                say(f"sent {sent}")
            time.sleep(a.pause)
        s.shutdown(socket.SHUT_WR)
        answer = read_answer(s, 120).decode(errors="replace").split()
    except OSError as e:
        fail(f"{tag}: {ename(e.errno)} after {sent} bytes")
        return 1
    want = [h.hexdigest(), str(sent)]
    if answer != want:
        fail(f"{tag}: the server read {answer}, sent {want}")
        return 1
    say(f"ok {tag}: {sent} bytes, the server's sha256 matches")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("server")
    p.add_argument("port", type=int)
    p.add_argument("--bind")
    p.add_argument("--backlog", type=int, default=128)
    p.add_argument("--accept-delay", type=float, default=0)
    p.add_argument("--accept-after")
    p.add_argument("--greet", default="")
    p.add_argument("--mode", choices=("echo", "count", "hash"), default="echo")
    p.add_argument("--marker", default="")
    p.add_argument("--epoll", action="store_true")
    p = sub.add_parser("nbclient")
    p.add_argument("port", type=int)
    p.add_argument("--conn", action="append", required=True, help="HOST,lt|et|block")
    p.add_argument("--concurrent", action="store_true")
    p.add_argument("--marker", required=True)
    p.add_argument("--greet", required=True)
    p.add_argument("--expect-wait", type=float)
    p.add_argument("--max-cpu", type=float, default=0.3)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("race")
    p.add_argument("port", type=int)
    p.add_argument("--run", action="append", required=True, help="VARIANT,HOST,CONNS,THREADS")
    p.add_argument("--msgs", type=int, default=20)
    p.add_argument("--marker", required=True)
    p.add_argument("--verbose", action="store_true")
    p = sub.add_parser("finclient")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--msgs", type=int, default=8)
    p.add_argument("--marker", required=True)
    p = sub.add_parser("probe")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--marker", required=True)
    p.add_argument("--greet", default="")
    p.add_argument("--expect", choices=("ok", "fail"), required=True)
    p.add_argument("--min-block", type=float)
    p.add_argument("--max-block", type=float)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("churn")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--marker", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--while-file")
    g.add_argument("--count", type=int)
    p.add_argument("--threads", type=int, default=4)
    p = sub.add_parser("stream")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--go-file", required=True)
    p.add_argument("--chunk", type=int, default=16384)
    p.add_argument("--pause", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.cmd == "server":
        Server(a).run()
        return 0
    return {"nbclient": cmd_nbclient, "race": cmd_race, "finclient": cmd_finclient,
            "probe": cmd_probe, "stream": cmd_stream, "churn": cmd_churn}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
